namespace Osprey.Diagnostics;

/// <summary>
/// One fused kernel checked against the tensor-op path it replaces (<see cref="FusedKernelProbe.Check"/>): how many of
/// <paramref name="Elements"/> outputs differ at all, and the largest difference relative to the largest reference value.
/// <paramref name="Limit"/> is the relative difference allowed (0 where the kernel must give the tensor path's bits).
/// </summary>
public sealed record FusedKernelCheck(string Kernel, string DType, long Elements, long Mismatched, double RelativeError, double Limit)
{
    /// <summary>Whether the difference is within <see cref="Limit"/>.</summary>
    public bool Passed => Limit == 0 ? Mismatched == 0 : RelativeError <= Limit;
}
