namespace Osprey.Diagnostics;

/// <summary>What <see cref="GraphProbe.Toy"/> measured on its 7-op chain.</summary>
/// <param name="CaptureMilliseconds">Time to capture the graph (with its warm-up runs).</param>
/// <param name="MaxError">The largest |replay − eager| over 3 fresh inputs copied into the captured input.</param>
/// <param name="EagerMicroseconds">One eager run of the chain.</param>
/// <param name="ReplayMicroseconds">One replay of the captured graph.</param>
public sealed record ToyGraphProbeResult(double CaptureMilliseconds, double MaxError, double EagerMicroseconds, double ReplayMicroseconds)
{
    /// <summary>Replay matches eager within float32 noise.</summary>
    public bool Matches => MaxError < 1e-3;
}
