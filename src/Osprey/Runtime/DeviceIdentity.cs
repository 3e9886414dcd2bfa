using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>Device comparison: TorchSharp's <see cref="Device"/> is a class without equality of its own, so <c>==</c>
/// compares objects, and two objects naming cuda:0 differ.</summary>
public static class DeviceIdentity
{
    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> name the same device (an index below zero, "the
    /// current one", counts as device 0).</summary>
    public static bool Is(this Device a, Device b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return a.type == b.type && Math.Max(a.index, 0) == Math.Max(b.index, 0);
    }
}
