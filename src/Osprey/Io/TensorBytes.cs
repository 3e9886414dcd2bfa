using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Io;

/// <summary>
/// Raw byte access to CPU tensors of any size. TorchSharp's <c>Tensor.bytes</c> is a <see cref="Span{T}"/>, so it
/// refuses tensors over 2 GiB (a large vocabulary's embedding in F32 can be bigger); these helpers walk such tensors
/// in slices of a flat view, each small enough for a span.
/// </summary>
internal static class TensorBytes
{
    // 1 GiB per slice: far below the span limit, and large enough that the per-slice overhead is negligible.
    private const long SliceBytes = 1L << 30;

    /// <summary>Copies <paramref name="length"/> bytes from <paramref name="source"/> into a contiguous CPU tensor of exactly that size.</summary>
    public static unsafe void CopyInto(byte* source, long length, Tensor destination)
    {
        if (length == 0)
        {
            return;
        }
        if (length <= int.MaxValue)
        {
            new ReadOnlySpan<byte>(source, (int)length).CopyTo(destination.bytes);
            return;
        }
        ForEachSlice(destination, (offset, slice) => new ReadOnlySpan<byte>(source + offset, slice.Length).CopyTo(slice));
    }

    /// <summary>Writes the bytes of a contiguous CPU tensor to <paramref name="stream"/> without a managed copy.</summary>
    public static void WriteTo(Tensor tensor, long length, Stream stream)
    {
        if (length == 0)
        {
            return;
        }
        if (length <= int.MaxValue)
        {
            stream.Write(tensor.bytes);
            return;
        }
        ForEachSlice(tensor, (_, slice) => stream.Write(slice));
    }

    private delegate void SliceAction(long byteOffset, Span<byte> slice);

    private static void ForEachSlice(Tensor tensor, SliceAction action)
    {
        using var scope = NewDisposeScope();
        var flat = tensor.view(-1);
        var elementSize = tensor.ElementSize;
        var elementsPerSlice = SliceBytes / elementSize;
        var count = flat.shape[0];
        for (long start = 0; start < count; start += elementsPerSlice)
        {
            using var slice = flat.narrow(0, start, Math.Min(elementsPerSlice, count - start));
            action(start * elementSize, slice.bytes);
        }
    }
}
