using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// One folder's bitsandbytes layers: read from a quantized checkpoint, or quantized from the dense weights as they load.
/// Every linear layer except lm_head is quantized, as transformers' bitsandbytes integration does (it keeps the output
/// projection dense).
/// </summary>
internal sealed class BnbFolder : IQuantizedFolder
{
    readonly string? _file;           // config.json of a stored quantized folder
    readonly QuantizationOptions? _options; // quantizing at load
    readonly int _bits;
    readonly ScalarType _compute;
    readonly Device _device;
    readonly ScalarType _modelDType;  // dense weights are cast to it before quantizing, as transformers loads them in torch_dtype first

    BnbFolder(string? file, QuantizationOptions? options, int bits, ScalarType compute, Device device, ScalarType modelDType, JsonObject config)
    {
        (_file, _options, _bits, _compute, _device, _modelDType, Config) = (file, options, bits, compute, device, modelDType, config);
    }

    /// <summary>A folder stored quantized (its quantization_config is written back unchanged on save).</summary>
    public static BnbFolder Stored(string configFile, JsonObject config, int bits, ScalarType compute, Device device) =>
        new(configFile, null, bits, compute, device, compute, (JsonObject)config.DeepClone());

    /// <summary>A dense folder quantized at load as <paramref name="options"/> say.</summary>
    public static BnbFolder AtLoad(QuantizationOptions options, ScalarType compute, Device device, ScalarType modelDType) =>
        new(null, options, options.QuantBits!.Value, compute, device, modelDType, ConfigFor(options, compute));

    /// <inheritdoc />
    public JsonObject Config { get; }

    /// <summary>transformers' BitsAndBytesConfig.to_dict() for these settings, as it lands in config.json.</summary>
    static JsonObject ConfigFor(QuantizationOptions o, ScalarType compute) => new()
    {
        ["_load_in_4bit"] = o.QuantBits == 4,
        ["_load_in_8bit"] = o.QuantBits == 8,
        ["bnb_4bit_compute_dtype"] = DTypes.Name(compute),
        ["bnb_4bit_quant_storage"] = "uint8",
        ["bnb_4bit_quant_type"] = FourBitWeight.TypeName(o.FourBitType),
        ["bnb_4bit_use_double_quant"] = o.Bnb4BitUseDoubleQuant,
        ["llm_int8_enable_fp32_cpu_offload"] = false,
        ["llm_int8_has_fp16_weight"] = false,
        ["llm_int8_skip_modules"] = null,
        ["llm_int8_threshold"] = 6.0,
        ["load_in_4bit"] = o.QuantBits == 4,
        ["load_in_8bit"] = o.QuantBits == 8,
        ["quant_method"] = "bitsandbytes",
    };

    static readonly string[] CompanionSuffixes =
        [".weight.absmax", ".weight.quant_map", ".weight.nested_absmax", ".weight.nested_quant_map", ".SCB", ".weight_format",
         ".weight.quant_state.bitsandbytes__nf4", ".weight.quant_state.bitsandbytes__fp4"];

    /// <inheritdoc />
    public bool IsCompanion(string tensorName) => CompanionSuffixes.Any(s => tensorName.EndsWith(s, StringComparison.Ordinal));

    /// <inheritdoc />
    public ILinearBase? Load(string layerPath, SafetensorsCheckpoint checkpoint)
    {
        if (layerPath == "lm_head" || layerPath.EndsWith(".lm_head", StringComparison.Ordinal) || layerPath == "score") return null;
        var weightName = layerPath + ".weight";
        if (!checkpoint.Contains(weightName)) return null; // the strict dense load names what is missing
        if (_options is null) return ReadStored(layerPath, checkpoint);
        using var dense = checkpoint.ReadTensor(weightName);
        using var onDevice = dense.to(_modelDType, _device);
        return _bits == 4
            ? FourBitWeight.Quantize(onDevice, _options.FourBitType, _options.Bnb4BitUseDoubleQuant, _compute)
            : Int8Weight.Quantize(onDevice, _compute);
    }

    ILinearBase? ReadStored(string layer, SafetensorsCheckpoint checkpoint)
    {
        var file = _file!;
        Tensor? Read(string name) => checkpoint.Contains(name) ? checkpoint.ReadTensor(name) : null;
        if (_bits == 8)
        {
            if (!checkpoint.Contains(layer + ".SCB")) return null; // a layer left dense (llm_int8_skip_modules)
            var cb = checkpoint.ReadTensor(layer + ".weight");
            if (cb.dtype != ScalarType.Int8) throw new OspreyException($"{file}: '{layer}.weight' is {cb.dtype} beside an SCB; an LLM.int8 weight is int8, so the checkpoint is damaged.");
            using var scb = checkpoint.ReadTensor(layer + ".SCB");
            return new Int8Weight(cb.to(_device), scb.to(_device), _compute);
        }
        var stateName = new[] { "nf4", "fp4" }.Select(t => layer + ".weight.quant_state.bitsandbytes__" + t).FirstOrDefault(checkpoint.Contains);
        if (stateName is null) return null; // a layer left dense
        using var stateBytes = checkpoint.ReadTensor(stateName);
        JsonObject state;
        try { state = JsonNode.Parse(stateBytes.data<byte>().ToArray()) as JsonObject ?? throw new FormatException("not an object"); }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException)
        {
            throw new OspreyException($"{file}: '{stateName}' is not the JSON quant state bitsandbytes writes ({e.Message}); the checkpoint is damaged.", e);
        }
        return FourBitWeight.Read(Read, layer, state, _compute, _device, checkpoint.Directory);
    }

    /// <inheritdoc />
    public string Describe(int layers) => _options is null
        ? $"osprey: loaded {layers} bitsandbytes {_bits}-bit layers from {Path.GetDirectoryName(_file)} (computing in {DTypes.Name(_compute)})."
        : $"osprey: quantized {layers} linear layers to {(_bits == 4 ? FourBitWeight.TypeName(_options.FourBitType) + (_options.Bnb4BitUseDoubleQuant ? " with double quantization" : "") : "LLM.int8")} at load (computing in {DTypes.Name(_compute)}).";
}
