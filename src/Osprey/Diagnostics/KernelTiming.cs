namespace Osprey.Diagnostics;

/// <summary>
/// Milliseconds per call at one layer shape (<see cref="KernelProbe.Time"/>): a bf16 matmul of the dense weight, the
/// fused 4-bit product, the dequantization kernel, the tensor-operation dequantization, and kernel dequantization
/// followed by the matmul (what the fused product replaces).
/// </summary>
public sealed record KernelTiming(long OutFeatures, long InFeatures, int Rows, double DenseMatmulMs, double FusedMs,
    double DequantKernelMs, double DequantPortableMs, double DequantThenMatmulMs);
