using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Gradients that custom autograd functions (<see cref="DequantizedLinear"/>, <see cref="FusedRmsNormFunction"/>,
/// <see cref="FusedRopeFunction"/>, <see cref="FusedSwiGluFunction"/>) returned to libtorch, whose managed wrappers are
/// theirs to free. On CUDA, libtorch runs backward on its own device thread, where no dispose scope exists: a wrapper
/// made there holds its GPU memory until a finalizer runs, which the GC has no reason to schedule. libtorch copies the
/// reference out of a returned gradient as soon as the callback returns, so a wrapper is freed at the next backward call
/// on the same thread, or by <see cref="Release"/> on it. Per thread, never across threads: another thread's gradient may
/// not have been handed over yet, and freeing it then is a use-after-free inside libtorch.
/// </summary>
internal static class HandedBack
{
    [ThreadStatic]
    static List<Tensor>? _list;

    /// <summary>Frees the wrappers this thread's earlier backward calls handed to libtorch (their callbacks have returned).</summary>
    public static void Release()
    {
        var list = _list;
        if (list is null) return;
        foreach (var t in list) t.Dispose();
        list.Clear();
    }

    /// <summary>Keeps <paramref name="gradients"/> (nulls skipped) until this thread's next <see cref="Release"/>.</summary>
    public static void Add(params Tensor?[] gradients)
    {
        var list = _list ??= [];
        foreach (var g in gradients)
            if (g is not null) list.Add(g);
    }
}
