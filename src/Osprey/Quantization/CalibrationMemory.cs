namespace Osprey.Quantization;

/// <summary>
/// The device memory a GPTQ or AWQ calibration plans to take, from shapes alone (printed before the first layer, so a run
/// that cannot fit says so in seconds rather than after the first OOM). An estimate of what lives at once, counted the
/// way <see cref="CalibratedQuantizer"/>, <see cref="GptqSolver"/> and <see cref="AwqSearch"/> free their tensors; the
/// CUDA context and the caching allocator's slack come on top.
/// </summary>
internal static class CalibrationMemory
{
    /// <summary>
    /// GPTQ on one group of projections sharing an input of width <paramref name="inFeatures"/>, stacked to
    /// <paramref name="outRows"/> rows: three float32 in² matrices at once while H⁻¹'s Cholesky factor is formed (H,
    /// its dampened copy, the factor), about five float32 copies of the stacked weight (the original, the copy GPTQ
    /// updates, the dequantized result, the int32 codes, round-to-nearest for the error table) and the kept input rows.
    /// </summary>
    public static long GptqGroupBytes(long outRows, long inFeatures, long keptRows) =>
        3 * inFeatures * inFeatures * 4 + 5 * outRows * inFeatures * 4 + keptRows * inFeatures * 4;

    /// <summary>
    /// AWQ on one such group: about five float32 copies of the stacked weight (original, scaled, codes, dequantized,
    /// clipped), the reference output of the kept rows [kept, out] and one chunk of the loss [chunk, out], the kept input
    /// rows, and the clipping search's row batch (its product, the clipped batch's output and their difference).
    /// </summary>
    public static long AwqGroupBytes(long outRows, long inFeatures, long keptRows) =>
        5 * outRows * inFeatures * 4 + (keptRows + AwqSearch.ChunkRows) * outRows * 4 + keptRows * inFeatures * 4 + 3 * AwqSearch.ClipBatchBytes;

    /// <summary>
    /// One decoder layer's forward over one sample of <paramref name="tokens"/> tokens in the model's dtype: the MLP's
    /// gate, up and product [tokens, intermediate], a handful of [tokens, hidden] states (the residual, the norm, q/k/v
    /// and the attention output) and a recorder's float32 chunk of the widest input.
    /// </summary>
    public static long ForwardBytes(long tokens, long hidden, long intermediate, long dtypeBytes) =>
        tokens * (3 * intermediate + 8 * hidden) * dtypeBytes + InputRecorder.DefaultChunkRows * Math.Max(hidden, intermediate) * 4;
}
