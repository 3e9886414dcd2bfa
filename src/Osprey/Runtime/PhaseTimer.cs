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
/// (an implicit synchronisation, a full launch queue), which this cannot tell apart. <c>OSPREY_PROFILE=3</c> helps tell
/// them apart: marks do not wait, and after the first mark of each step (each <see cref="Restart"/>) a kernel keeps the
/// device busy for <see cref="LeadMilliseconds"/> (<c>OSPREY_PROFILE_LEAD_MS</c>, default 300). With the device that
/// far behind, a phase's "(host, device behind) phase" time is what queueing its work costs the host, unless it waits
/// for the device inside: an implicit synchronisation shows the rest of the lead in its time, and a phase that queues
/// more launches than the driver's queue holds waits for the device to drain some. On an H100 (session 16) the lead
/// first sat at a step's start, and "batch to device" took all of it: copying the micro-batch from pageable host
/// memory waits for the device (hence the lead now starts after that first mark).
/// </summary>
public static unsafe class PhaseTimer
{
    static readonly Dictionary<string, double> s_totals = new(StringComparer.Ordinal);
    static readonly Stopwatch s_clock = Stopwatch.StartNew();
    static double s_last;

    /// <summary>True when <c>OSPREY_PROFILE</c> is 1, 2 or 3.</summary>
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("OSPREY_PROFILE") is "1" or "2" or "3";

    /// <summary>True when <c>OSPREY_PROFILE=3</c>: marks do not wait; after each step's first mark the device is kept busy.</summary>
    static bool Lead { get; } = Environment.GetEnvironmentVariable("OSPREY_PROFILE") == "3";

    /// <summary>How long the device is kept busy after each step's first mark with <c>OSPREY_PROFILE=3</c>, in milliseconds.</summary>
    public static int LeadMilliseconds { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("OSPREY_PROFILE_LEAD_MS"), out var ms) && ms > 0 ? ms : 300;

    static readonly KernelModule SpinModule = new("osprey_spin", """
extern "C" __global__ void spin(long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now)); } while (now - start < (unsigned long long)ns);
}
""", ["spin"], "the profiler's busy kernel", "OSPREY_PROFILE=3 times the host without a device lead");

    /// <summary>True when <c>OSPREY_PROFILE=2</c>: host time per phase too.</summary>
    static bool Host { get; } = Environment.GetEnvironmentVariable("OSPREY_PROFILE") == "2";

    /// <summary>Starts timing from now (the time since the previous mark is dropped).</summary>
    public static void Restart(Device device)
    {
        if (!Enabled) return;
        Sync(device);
        s_leadPending = Lead;
        s_last = s_clock.Elapsed.TotalMilliseconds;
    }

    static bool s_leadPending;

    /// <summary>Charges the time since the previous mark to <paramref name="phase"/>.</summary>
    public static void Mark(Device device, string phase)
    {
        if (!Enabled) return;
        var queued = s_clock.Elapsed.TotalMilliseconds;
        if (Lead)
        {
            lock (s_totals) s_totals["(host, device behind) " + phase] = s_totals.GetValueOrDefault("(host, device behind) " + phase) + (queued - s_last);
            if (s_leadPending && device.type == DeviceType.CUDA && SpinModule.Unavailable(device.index) is null)
            {
                s_leadPending = false;
                long ns = LeadMilliseconds * 1_000_000L;
                void** args = stackalloc void*[] { &ns };
                SpinModule.Launch(device.index, "spin", (1, 1), 1, args);
            }
            s_last = s_clock.Elapsed.TotalMilliseconds;
            return;
        }
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
