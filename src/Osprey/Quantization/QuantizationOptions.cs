using Osprey.Options;

namespace Osprey.Quantization;

/// <summary>
/// ms-swift's quantization flags: <c>--quant_method bnb --quant_bits 4|8</c> and the bitsandbytes 4-bit settings.
/// Given to a verb that loads a model, they quantize its linear layers at load (QLoRA on sft/rlhf); given to export,
/// they write the quantized folder. A folder that is already quantized (config.json quantization_config) needs none.
/// </summary>
public sealed record QuantizationOptions
{
    /// <summary>bnb, or null for no quantization at load.</summary>
    [Option("quant_method", "bnb: quantize the linear layers with bitsandbytes' formats at load (QLoRA), or write them quantized with export; gptq | awq | fp8 (export only): write a GPTQ, AWQ or FP8 checkpoint, calibrated on --dataset for gptq/awq.", Placeholder = "M")]
    public string? QuantMethod { get; init; }

    /// <summary>4 or 8.</summary>
    [Option("quant_bits", "4 (NF4/FP4 blocks of 64) or 8 (LLM.int8 row-wise) with --quant_method bnb; 2, 4 or 8 with gptq; 4 with awq; 8 (or unset) with fp8.", Placeholder = "N")]
    public int? QuantBits { get; init; }

    /// <summary>nf4 or fp4.</summary>
    [Option("bnb_4bit_quant_type", "nf4 | fp4: the 4-bit code table.", Placeholder = "T")]
    public string Bnb4BitQuantType { get; init; } = "nf4";

    /// <summary>Double quantization of the per-block absmax.</summary>
    [Option("bnb_4bit_use_double_quant", "Code each block's absmax in 8 bits (blocks of 256 around their mean), saving about 0.37 bits per weight.")]
    public bool Bnb4BitUseDoubleQuant { get; init; } = true;

    /// <summary>The dtype quantized layers compute in; null: the model's dtype (--torch_dtype).</summary>
    [Option("bnb_4bit_compute_dtype", "bfloat16 | float16 | float32: the dtype quantized layers dequantize to and multiply in.", Placeholder = "T", DefaultText = "--torch_dtype")]
    public string? Bnb4BitComputeDtype { get; init; }

    /// <summary>The dtype of the packed 4-bit storage; Osprey stores uint8.</summary>
    [Option("bnb_4bit_quant_storage", "Storage dtype of packed 4-bit weights (uint8).", Placeholder = "T", DefaultText = "uint8")]
    public string? Bnb4BitQuantStorage { get; init; }

    /// <summary>True when the flags ask to quantize at load.</summary>
    public bool Active => QuantMethod is not null;

    /// <summary>Checks the values once; the message names the flag.</summary>
    public void Validate()
    {
        if (QuantMethod is null)
        {
            if (QuantBits is not null) throw new OspreyException("--quant_bits needs --quant_method bnb; add it to quantize the model.");
            return;
        }
        if (QuantizedExportSettings.IsExportMethod(QuantMethod))
            throw new OspreyException($"--quant_method {QuantMethod} writes a quantized checkpoint with osprey export (--output_dir); to load one, pass its folder as --model without --quant_method.");
        if (!string.Equals(QuantMethod, "bnb", StringComparison.OrdinalIgnoreCase))
            throw new OspreyException($"--quant_method '{QuantMethod}' is not supported; Osprey quantizes with bnb (bitsandbytes' NF4/FP4 and LLM.int8 formats).");
        if (QuantBits is not (4 or 8)) throw new OspreyException($"--quant_method bnb needs --quant_bits 4 or 8 (got {(QuantBits is int b ? b.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")}).");
        _ = FourBitType;
        if (Bnb4BitQuantStorage is not null && !string.Equals(Bnb4BitQuantStorage.Replace("torch.", "", StringComparison.Ordinal), "uint8", StringComparison.OrdinalIgnoreCase))
            throw new OspreyException($"--bnb_4bit_quant_storage '{Bnb4BitQuantStorage}' is not supported; Osprey stores packed 4-bit weights as uint8.");
        if (Bnb4BitComputeDtype is not null) Runtime.DTypes.Parse(Bnb4BitComputeDtype, "--bnb_4bit_compute_dtype");
    }

    /// <summary>The parsed --bnb_4bit_quant_type.</summary>
    public FourBitType FourBitType => Bnb4BitQuantType.ToLowerInvariant() switch
    {
        "nf4" => FourBitType.Nf4,
        "fp4" => FourBitType.Fp4,
        _ => throw new OspreyException($"--bnb_4bit_quant_type '{Bnb4BitQuantType}' is not supported; use nf4 or fp4."),
    };
}
