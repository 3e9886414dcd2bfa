namespace Osprey.Quantization;

/// <summary>bitsandbytes' 4-bit data types (<c>--bnb_4bit_quant_type</c>).</summary>
public enum FourBitType
{
    /// <summary>NormalFloat 4: quantiles of a normal distribution (QLoRA's default).</summary>
    Nf4,

    /// <summary>4-bit float (1 sign, 2 exponent, 1 mantissa bit).</summary>
    Fp4,
}
