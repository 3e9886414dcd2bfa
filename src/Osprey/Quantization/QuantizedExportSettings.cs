using System.Globalization;
using System.Text.Json.Nodes;
using Osprey.Models;

namespace Osprey.Quantization;

/// <summary>
/// What a calibrated export writes: <c>--quant_method gptq|awq|fp8</c>, <c>--quant_bits</c>, <c>--group_size</c>, GPTQ's
/// <c>--gptq_desc_act</c>/<c>--gptq_sym</c> and FP8's <c>--fp8_scheme</c>, checked together.
/// </summary>
public sealed record QuantizedExportSettings
{
    /// <summary>gptq, awq or fp8.</summary>
    public required string Method { get; init; }

    /// <summary>Bits per weight (8 for FP8).</summary>
    public required int Bits { get; init; }

    /// <summary>Inputs per group (−1: a whole row).</summary>
    public int GroupSize { get; init; } = 128;

    /// <summary>GPTQ act-order.</summary>
    public bool DescAct { get; init; }

    /// <summary>GPTQ symmetric grid.</summary>
    public bool Sym { get; init; } = true;

    /// <summary>FP8 scales.</summary>
    public Fp8Scheme Fp8Scheme { get; init; } = Fp8Scheme.Block;

    /// <summary>True for GPTQ and AWQ, which need --dataset.</summary>
    public bool NeedsCalibration => Method is "gptq" or "awq";

    /// <summary>The methods a calibrated export writes.</summary>
    public static bool IsExportMethod(string? method) => method?.ToLowerInvariant() is "gptq" or "awq" or "fp8";

    /// <summary>The settings the flags ask for; the message names the flag to fix.</summary>
    /// <exception cref="OspreyException">A value does not fit the method.</exception>
    public static QuantizedExportSettings From(QuantizationOptions quantization, ExportOptions export)
    {
        var method = quantization.QuantMethod?.ToLowerInvariant() ?? throw new OspreyException("--quant_method is required for a quantized export (gptq, awq or fp8).");
        var bits = quantization.QuantBits;
        string Got() => bits is int b ? b.ToString(CultureInfo.InvariantCulture) : "none";
        switch (method)
        {
            case "gptq" when bits is not (2 or 4 or 8):
                throw new OspreyException($"--quant_method gptq needs --quant_bits 2, 4 or 8 (got {Got()}); Osprey writes GPTQ's whole-word packings.");
            case "awq" when bits is not 4:
                throw new OspreyException($"--quant_method awq needs --quant_bits 4 (got {Got()}); AutoAWQ's GEMM layout holds 4-bit weights.");
            case "fp8" when bits is not (null or 8):
                throw new OspreyException($"--quant_method fp8 stores 8 bits (e4m3); drop --quant_bits or pass 8 (got {Got()}).");
            case "gptq" or "awq" or "fp8":
                break;
            default:
                throw new OspreyException($"--quant_method '{quantization.QuantMethod}' is not an export method; use gptq, awq or fp8 (bnb quantizes at load).");
        }
        if (export.GroupSize is 0 or < -1) throw new OspreyException($"--group_size must be positive or -1 (one group per row), got {export.GroupSize}.");
        if (export.QuantNSamples <= 0) throw new OspreyException($"--quant_n_samples must be positive, got {export.QuantNSamples}.");
        var scheme = export.Fp8Scheme.ToLowerInvariant() switch
        {
            "tensor" => Fp8Scheme.Tensor,
            "channel" => Fp8Scheme.Channel,
            "block" => Fp8Scheme.Block,
            _ => throw new OspreyException($"--fp8_scheme '{export.Fp8Scheme}' is not supported; use tensor, channel or block."),
        };
        return new QuantizedExportSettings
        {
            Method = method,
            Bits = bits ?? 8,
            GroupSize = export.GroupSize,
            DescAct = export.GptqDescAct,
            Sym = export.GptqSym,
            Fp8Scheme = scheme,
        };
    }

    /// <summary>The quantization_config written into config.json, as GPTQModel/AutoGPTQ, AutoAWQ and the FP8 checkpoints write it.</summary>
    public JsonObject Config() => Method switch
    {
        "gptq" => new JsonObject
        {
            ["bits"] = Bits,
            ["group_size"] = GroupSize,
            ["desc_act"] = DescAct,
            ["sym"] = Sym,
            ["damp_percent"] = 0.01,
            ["true_sequential"] = true,
            ["static_groups"] = false,
            ["lm_head"] = false,
            ["quant_method"] = "gptq",
            ["checkpoint_format"] = "gptq",
            ["meta"] = new JsonObject { ["quantizer"] = new JsonArray("osprey") },
        },
        "awq" => new JsonObject
        {
            ["bits"] = 4,
            ["group_size"] = GroupSize,
            ["zero_point"] = true,
            ["version"] = "gemm",
            ["modules_to_not_convert"] = null,
            ["quant_method"] = "awq",
        },
        _ => Fp8Scheme switch
        {
            Fp8Scheme.Block => new JsonObject { ["quant_method"] = "fp8", ["fmt"] = "e4m3", ["activation_scheme"] = "dynamic", ["weight_block_size"] = new JsonArray(128, 128) },
            Fp8Scheme.Channel => new JsonObject { ["quant_method"] = "fbgemm_fp8", ["activation_scale_ub"] = 1200.0, ["modules_to_not_convert"] = new JsonArray("lm_head") },
            _ => new JsonObject { ["quant_method"] = "fp8", ["fmt"] = "e4m3", ["activation_scheme"] = "dynamic" },
        },
    };
}
