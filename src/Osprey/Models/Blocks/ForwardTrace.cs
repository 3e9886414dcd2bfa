using System.Diagnostics;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Diagnostic: with <c>OSPREY_TRACE_FORWARD=1</c>, forwards over more than one position (prefill, training)
/// synchronise the GPU after each phase and record its wall time; the phases of the last such forward are
/// printed to stderr at exit (earlier ones include one-time start-up costs). Off by default, costing one
/// boolean test per phase.
/// </summary>
internal static class ForwardTrace
{
    static readonly bool Enabled = Environment.GetEnvironmentVariable("OSPREY_TRACE_FORWARD") == "1";
    static readonly Stopwatch Clock = new();
    static readonly Dictionary<string, (double Ms, int Count)> Totals = [];
    static bool _registered;

    /// <summary>A new forward over <paramref name="positions"/> positions begins: forget the previous one.</summary>
    public static void BeginForward(long positions)
    {
        if (!Enabled || positions <= 1) return;
        Totals.Clear();
        Start(positions);
    }

    /// <summary>Starts timing the next phase of a forward over <paramref name="tokens"/> positions.</summary>
    public static void Start(long tokens)
    {
        if (!Enabled || tokens <= 1) return;
        Sync();
        Clock.Restart();
        if (!_registered)
        {
            _registered = true;
            AppDomain.CurrentDomain.ProcessExit += (_, _) => Dump();
        }
    }

    /// <summary>Ends the current phase under <paramref name="label"/> and starts the next.</summary>
    public static void Mark(long tokens, string label)
    {
        if (!Enabled || tokens <= 1) return;
        Sync();
        var ms = Clock.Elapsed.TotalMilliseconds;
        Totals[label] = Totals.TryGetValue(label, out var t) ? (t.Ms + ms, t.Count + 1) : (ms, 1);
        Clock.Restart();
    }

    static void Sync()
    {
        if (cuda.is_available()) cuda.synchronize();
    }

    static void Dump()
    {
        Console.Error.WriteLine("forward trace (last forward over more than one position): phase, ms, calls");
        foreach (var (label, (ms, n)) in Totals.OrderByDescending(kv => kv.Value.Ms))
            Console.Error.WriteLine($"  {label,-22} {ms,10:F2} {n,6}");
    }
}
