namespace Osprey.Quantization;

/// <summary>How an FP8 export scales its weights (--fp8_scheme): one scale per tensor, per output channel, or per 128×128 block.</summary>
public enum Fp8Scheme
{
    /// <summary>One scale per weight (quant_method fp8, weight_scale []).</summary>
    Tensor,

    /// <summary>One scale per output row (quant_method fbgemm_fp8, weight_scale [out, 1]).</summary>
    Channel,

    /// <summary>One scale per 128×128 block (quant_method fp8 with weight_block_size [128, 128], weight_scale_inv).</summary>
    Block,
}
