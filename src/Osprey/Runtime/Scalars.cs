using TorchSharp;

namespace Osprey.Runtime;

/// <summary>
/// Scalars rooted for the life of the process, for the hot paths that pass a constant to libtorch.
/// </summary>
/// <remarks>
/// TorchSharp's <see cref="Scalar"/> frees its native value in a finalizer. The temporary an implicit conversion makes
/// (<c>x.masked_fill(m, double.NegativeInfinity)</c>) is unreachable once its handle has been read, so a garbage
/// collection started by another thread during the native call can free the value while libtorch is still reading it.
/// The serving engine hit this under its parallel mask threads: "Expected false to be true" from
/// <c>c10::Scalar::toFloat</c>, about one run in three of a 32-request structured benchmark on the CPU. A static field
/// keeps the managed object reachable, so its finalizer never runs; libtorch only reads the value, so threads may share it.
/// Elsewhere, hold a Scalar in a <c>using</c> variable across the call.
/// </remarks>
public static class Scalars
{
    /// <summary>-inf, the fill of refused logits and masked attention scores.</summary>
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();

    /// <summary>0 (an integer scalar; libtorch promotes it to the tensor's type).</summary>
    public static readonly Scalar Zero = 0.ToScalar();

    /// <summary>false, for boolean fills.</summary>
    public static readonly Scalar False = false.ToScalar();

    /// <summary>1.0, Gemma's norm offset.</summary>
    public static readonly Scalar One = 1.0.ToScalar();
}
