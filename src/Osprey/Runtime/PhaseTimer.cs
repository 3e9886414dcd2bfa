using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// Where a training step's time goes, when the environment variable <c>OSPREY_PROFILE</c> is 1: each
/// <see cref="Mark"/> waits for the device to finish (so GPU time is charged to the phase that queued it) and adds the
/// time since the previous mark to that phase. Off by default: the synchronisations themselves cost speed. With
/// <c>OSPREY_PROFILE=2</c> each phase also gets a "(host) phase" total: the time until its mark was reached, before
/// waiting for the device. A phase whose host time is far below its total waits on the device; one whose host time is
/// close to its total either queues its work no faster than the device runs it (launch overhead) or waits inside it
/// (an implicit synchronisation, a full launch queue), which this cannot tell apart.
/// </summary>
public static class PhaseTimer
{
    static readonly Dictionary<string, double> s_totals = new(StringComparer.Ordinal);
    static readonly Stopwatch s_clock = Stopwatch.StartNew();
    static double s_last;

    /// <summary>True when <c>OSPREY_PROFILE=1</c> or <c>2</c>.</summary>
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("OSPREY_PROFILE") is "1" or "2";

    /// <summary>True when <c>OSPREY_PROFILE=2</c>: host time per phase too.</summary>
    static bool Host { get; } = Environment.GetEnvironmentVariable("OSPREY_PROFILE") == "2";

    /// <summary>Starts timing from now (the time since the previous mark is dropped).</summary>
    public static void Restart(Device device)
    {
        if (!Enabled) return;
        Sync(device);
        s_last = s_clock.Elapsed.TotalMilliseconds;
    }

    /// <summary>Charges the time since the previous mark to <paramref name="phase"/>.</summary>
    public static void Mark(Device device, string phase)
    {
        if (!Enabled) return;
        var queued = s_clock.Elapsed.TotalMilliseconds;
        Sync(device);
        var now = s_clock.Elapsed.TotalMilliseconds;
        lock (s_totals)
        {
            s_totals[phase] = s_totals.GetValueOrDefault(phase) + (now - s_last);
            if (Host) s_totals["(host) " + phase] = s_totals.GetValueOrDefault("(host) " + phase) + (queued - s_last);
        }
        s_last = now;
    }

    /// <summary>The totals per phase (milliseconds), and clears them.</summary>
    public static IReadOnlyDictionary<string, double> TakeTotals()
    {
        lock (s_totals)
        {
            var copy = new Dictionary<string, double>(s_totals);
            s_totals.Clear();
            return copy;
        }
    }

    static void Sync(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }
}
