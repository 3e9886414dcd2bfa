using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// What <see cref="GptqSolver.Solve"/> returns for a weight W [out, in]: the quantized codes int32 [out, in], one scale
/// and zero point per group and output row (float32 / int32 [groups, out]), each input column's group (int32 [in]) and
/// the dequantized weight scale·(q − zero) [out, in] float32. The caller owns the tensors.
/// </summary>
internal sealed record GptqResult(Tensor Codes, Tensor Scales, Tensor Zeros, Tensor GroupIndex, Tensor Dequantized) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Codes.Dispose();
        Scales.Dispose();
        Zeros.Dispose();
        GroupIndex.Dispose();
        Dequantized.Dispose();
    }
}
