using Osprey.Options;

namespace Osprey.Diagnostics;

/// <summary>What <c>osprey kernel-probe</c> times (<see cref="KernelProbe"/>).</summary>
public sealed record KernelProbeOptions
{
    /// <summary>Rows (tokens) of the timed products.</summary>
    [Option("batch_size", "Rows (tokens) of the timed products.", Placeholder = "N...", Converter = typeof(PositiveIntegersConverter))]
    public IReadOnlyList<int> BatchSizes { get; init; } = [1, 8];

    /// <summary>Check and time the fused RMSNorm, RoPE and SwiGLU kernels instead of the 4-bit ones.</summary>
    [Option("fused", "Check the fused RMSNorm/RoPE/SwiGLU kernels (forward and backward, every dtype) against the tensor path and time them at 7B shapes, instead of the 4-bit kernels.")]
    public bool Fused { get; init; }
}
