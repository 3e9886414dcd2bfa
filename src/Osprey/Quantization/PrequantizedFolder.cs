using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// One pre-quantized folder's layers (GPTQ, AWQ GEMM or FP8), read as stored: a layer is quantized where its packed
/// tensors are present (the others, e.g. lm_head or modules_to_not_convert, load densely).
/// </summary>
internal sealed class PrequantizedFolder : IQuantizedFolder
{
    /// <summary>The quant_method values this class reads.</summary>
    public static readonly string[] Methods = ["gptq", "awq", "fp8", "fbgemm_fp8"];

    readonly string _file;
    readonly string _method;
    readonly ScalarType _compute;
    readonly Device _device;
    readonly int _bits, _groupSize, _zeroOffset;
    readonly long[]? _block;

    PrequantizedFolder(string file, string method, JsonObject config, ScalarType compute, Device device, int bits, int groupSize, int zeroOffset, long[]? block)
    {
        (_file, _method, Config, _compute, _device, _bits, _groupSize, _zeroOffset, _block) = (file, method, (JsonObject)config.DeepClone(), compute, device, bits, groupSize, zeroOffset, block);
    }

    /// <summary>Checks <paramref name="config"/> (quantization_config of <paramref name="file"/>) and opens the folder.</summary>
    public static PrequantizedFolder Open(string file, string method, JsonObject config, ScalarType compute, Device device)
    {
        int Int(string key, int fallback)
        {
            try { return config[key] is { } v ? v.GetValue<int>() : fallback; }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new OspreyException($"{file}: quantization_config.{key} must be an integer; fix the config.", e);
            }
        }
        switch (method)
        {
            case "gptq":
            {
                var bits = Int("bits", 4);
                if (bits is not (2 or 3 or 4 or 8)) throw new OspreyException($"{file}: quantization_config.bits is {bits}, but GPTQ checkpoints hold 2, 3, 4 or 8 bits; fix the config.");
                // AutoGPTQ (format "gptq", v1) stores each zero point minus one; GPTQModel's "gptq_v2" stores it as is.
                var format = (config["checkpoint_format"] ?? config["format"])?.ToString() ?? "gptq";
                var offset = format switch
                {
                    "gptq" => 1,
                    "gptq_v2" => 0,
                    _ => throw new OspreyException($"{file}: GPTQ checkpoint_format '{format}' is not supported; Osprey reads the 'gptq' and 'gptq_v2' packings, so convert the checkpoint with GPTQModel."),
                };
                return new(file, method, config, compute, device, bits, Int("group_size", 128), offset, null);
            }
            case "awq":
            {
                var version = config["version"]?.ToString()?.ToLowerInvariant() ?? "gemm";
                if (version != "gemm")
                    throw new OspreyException($"{file}: AWQ version '{version}' is not supported; Osprey reads AutoAWQ's GEMM packing (version \"gemm\", its default), so quantize or convert the model with that version.");
                if (Int("bits", 4) != 4) throw new OspreyException($"{file}: quantization_config.bits is {Int("bits", 4)}, but AWQ GEMM checkpoints hold 4 bits; fix the config.");
                if (config["zero_point"] is { } zp && !zp.GetValue<bool>())
                    throw new OspreyException($"{file}: AWQ without zero points (zero_point false) is not supported; Osprey reads AutoAWQ's GEMM checkpoints with zero points.");
                return new(file, method, config, compute, device, 4, Int("group_size", 128), 0, null);
            }
            default:
            {
                long[]? block = null;
                if (config["weight_block_size"] is JsonArray sizes)
                {
                    block = sizes.Select(s => (long)(s?.GetValue<int>() ?? 0)).ToArray();
                    if (block is not [> 0, > 0]) throw new OspreyException($"{file}: quantization_config.weight_block_size must be two positive integers such as [128, 128]; fix the config.");
                }
                return new(file, method, config, compute, device, 8, 0, 0, block);
            }
        }
    }

    /// <inheritdoc />
    public JsonObject Config { get; }

    string[] CompanionSuffixes => _method is "gptq" or "awq"
        ? [".qweight", ".qzeros", ".scales", ".g_idx"]
        : [".weight_scale_inv", ".weight_scale", ".input_scale"];

    /// <inheritdoc />
    public bool IsCompanion(string tensorName) => CompanionSuffixes.Any(s => tensorName.EndsWith(s, StringComparison.Ordinal));

    /// <inheritdoc />
    public ILinearBase? Load(string layerPath, SafetensorsCheckpoint checkpoint) => _method switch
    {
        "gptq" => checkpoint.Contains(layerPath + ".qweight") ? GptqWeight.Read(_file, layerPath, checkpoint, _bits, _groupSize, _zeroOffset, _compute, _device) : null,
        "awq" => checkpoint.Contains(layerPath + ".qweight") ? AwqWeight.Read(_file, layerPath, checkpoint, _groupSize, _compute, _device) : null,
        _ => checkpoint.Contains(layerPath + ".weight") && (checkpoint.Contains(layerPath + ".weight_scale_inv") || checkpoint.Contains(layerPath + ".weight_scale"))
            ? Fp8Weight.Read(_file, layerPath, checkpoint, _block, _compute, _device) : null,
    };

    /// <inheritdoc />
    public string Describe(int layers)
    {
        var what = _method switch
        {
            "gptq" => $"GPTQ {_bits}-bit",
            "awq" => "AWQ 4-bit",
            _ => _block is [var r, var c] ? $"FP8 ({r}×{c} block scales)" : "FP8",
        };
        // GptqWeight takes libtorch's packed int4 CPU product in bfloat16 where the group layout allows (no act-order, groups of 32-256).
        var packed = _method == "gptq" && _bits == 4 && _device.type == TorchSharp.DeviceType.CPU && _compute == ScalarType.BFloat16 && CpuPackedMatmul.Unavailable() is null;
        var how = packed ? "multiplied from the packed codes on the CPU where the group layout allows, else dequantized per layer to bfloat16" : $"dequantized per layer to {DTypes.Name(_compute)}";
        return $"osprey: loaded {layers} {what} layers from {Path.GetDirectoryName(_file)} ({how}).";
    }
}
