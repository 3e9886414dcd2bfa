using Osprey.Options;

namespace Osprey.Diagnostics;

/// <summary>What <c>osprey kernel-probe</c> times (<see cref="KernelProbe"/>).</summary>
public sealed record KernelProbeOptions
{
    /// <summary>Rows (tokens) of the timed products.</summary>
    [Option("batch_size", "Rows (tokens) of the timed products.", Placeholder = "N...", Converter = typeof(PositiveIntegersConverter))]
    public IReadOnlyList<int> BatchSizes { get; init; } = [1, 8];
}
