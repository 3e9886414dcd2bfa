using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.IO.Hashing;
using Osprey.Images;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// A frozen vision tower's features per image, kept in host memory so that an image goes through the tower once: for
/// the chosen, rejected and reference passes of a preference row, and for later steps and epochs. Bounded: when the
/// features held pass <see cref="BudgetBytes"/>, the least recently used go first.
/// </summary>
/// <remarks>
/// The key is a 128-bit XXH3 hash of the image as the tower takes it (its pixel values, grid and patch size), so it covers the
/// image's content and every processor setting that shaped it (min/max pixels, mean/std, patch and merge sizes) at
/// once; two rows naming the same file share an entry. It is valid only while the tower and the aligner cannot
/// change (no gradients, no adapters); the training recipes decide that and attach the cache
/// (<see cref="CausalLM.FeatureCache"/>). Features are stored on the CPU in the model's dtype, so a GPU's memory is not
/// spent on them, and copied to the model's device when used.
/// </remarks>
internal sealed class VisionFeatureCache : IDisposable
{
    readonly Dictionary<string, LinkedListNode<(string Key, Tensor Features)>> _entries = new(StringComparer.Ordinal);
    readonly LinkedList<(string Key, Tensor Features)> _order = new(); // most recently used first
    // Each ImagePatches object is hashed once. XXH3 rather than SHA-256: a batch of large pictures is ~100 MB of pixel
    // values, which SHA-256 took ~60 ms to hash on a 2-core EPYC (with SHA extensions) and XXH3 7 ms; the key only has
    // to tell the dataset's own images apart, not resist an adversary.
    readonly ConditionalWeakTable<ImagePatches, string> _keys = new();
    readonly Lock _lock = new();
    long _bytes;

    /// <summary>A cache that holds at most <paramref name="budgetBytes"/> bytes of features.</summary>
    public VisionFeatureCache(long budgetBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetBytes);
        BudgetBytes = budgetBytes;
    }

    /// <summary>The most bytes of features held at once.</summary>
    public long BudgetBytes { get; }

    /// <summary>Image uses served without a tower pass (found in the cache, or repeated within one call).</summary>
    public long Hits { get; private set; }

    /// <summary>Images sent through the tower (not found, or evicted since).</summary>
    public long Misses { get; private set; }

    /// <summary>Bytes of features held now.</summary>
    public long Bytes => _bytes;

    /// <summary>
    /// The features [tokens, out] of <paramref name="images"/> in order, on <paramref name="device"/>: cached ones are
    /// reused, the others (each distinct image once, even when a batch repeats it) go through <paramref name="encode"/>
    /// in one call and are stored. <paramref name="mergeSize"/> splits the tower's output into images.
    /// </summary>
    public Tensor Features(IReadOnlyList<ImagePatches> images, int mergeSize, Device device, Func<IReadOnlyList<ImagePatches>, Tensor> encode)
    {
        lock (_lock)
        {
            using var scope = NewDisposeScope();
            var keys = images.Select(Key).ToArray();
            var found = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var missing = new List<(string Key, ImagePatches Image)>();
            for (var i = 0; i < images.Count; i++)
            {
                if (found.ContainsKey(keys[i]) || missing.Any(m => m.Key == keys[i])) continue;
                if (_entries.TryGetValue(keys[i], out var node))
                {
                    _order.Remove(node);
                    _order.AddFirst(node);
                    found[keys[i]] = node.Value.Features;
                }
                else missing.Add((keys[i], images[i]));
            }
            var fresh = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            if (missing.Count > 0)
            {
                var encoded = encode(missing.Select(m => m.Image).ToList());
                long offset = 0;
                foreach (var (key, image) in missing)
                {
                    var n = image.TokenCount(mergeSize);
                    fresh[key] = encoded.narrow(0, offset, n);
                    offset += n;
                }
                if (offset != encoded.shape[0])
                    throw new InvalidOperationException($"the vision tower gave {encoded.shape[0]} features for images of {offset} tokens");
            }
            Misses += missing.Count;
            Hits += keys.Length - missing.Count;
            // Every image's rows, in order, as one new tensor on the device (the cached ones stay where they are).
            var result = cat(keys.Select(k => fresh.TryGetValue(k, out var f) ? f : found[k].to(device)).ToList(), 0);
            foreach (var (key, features) in fresh) Store(key, features);
            return result.MoveToOuterDisposeScope();
        }
    }

    void Store(string key, Tensor features)
    {
        // A device tensor's copy to the CPU is already its own memory; a CPU tensor would alias the caller's.
        var host = (features.device_type == TorchSharp.DeviceType.CPU ? features.detach().clone() : features.detach().to(CPU)).DetachFromDisposeScope();
        var size = host.NumberOfElements * host.ElementSize;
        if (size > BudgetBytes)
        {
            host.Dispose();
            return;
        }
        _entries[key] = _order.AddFirst((key, host));
        _bytes += size;
        while (_bytes > BudgetBytes && _order.Last is { } last)
        {
            _order.RemoveLast();
            _entries.Remove(last.Value.Key);
            _bytes -= last.Value.Features.NumberOfElements * last.Value.Features.ElementSize;
            last.Value.Features.Dispose();
        }
    }

    string Key(ImagePatches image) => _keys.GetValue(image, static i =>
    {
        var hash = new XxHash128();
        Span<byte> header = stackalloc byte[16];
        BitConverter.TryWriteBytes(header[..4], i.GridT);
        BitConverter.TryWriteBytes(header[4..8], i.GridH);
        BitConverter.TryWriteBytes(header[8..12], i.GridW);
        BitConverter.TryWriteBytes(header[12..], i.PatchDim);
        hash.Append(header);
        hash.Append(MemoryMarshal.AsBytes(i.PixelValues.AsSpan()));
        return Convert.ToHexString(hash.GetCurrentHash());
    });

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (_, features) in _order) features.Dispose();
            _order.Clear();
            _entries.Clear();
            _bytes = 0;
        }
    }
}
