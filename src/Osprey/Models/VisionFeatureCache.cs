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
/// The key is a 128-bit XXH3 hash of the image as the tower takes it (its pixel values and shape: Qwen2-VL's grid and
/// patch size, a LLaVA's crops and original size), so it covers the image's content and every processor setting that
/// shaped it (min/max pixels, mean/std, patch and merge sizes, anyres tiling) at once; two rows naming the same file
/// share an entry. It is valid only while the tower and the aligner cannot change (no gradients, no adapters); the
/// training recipes decide that and attach the cache (<see cref="CausalLM.FeatureCache"/>). Features are stored on the CPU in the model's dtype, so a GPU's memory is not
/// spent on them, and copied to the model's device when used.
/// </remarks>
internal sealed class VisionFeatureCache : IDisposable
{
    readonly Dictionary<string, LinkedListNode<(string Key, Tensor Features)>> _entries = new(StringComparer.Ordinal);
    readonly LinkedList<(string Key, Tensor Features)> _order = new(); // most recently used first
    // Each image object is hashed once. XXH3 rather than SHA-256: a batch of large pictures is ~100 MB of pixel
    // values, which SHA-256 took ~60 ms to hash on a 2-core EPYC (with SHA extensions) and XXH3 7 ms; the key only has
    // to tell the dataset's own images apart, not resist an adversary.
    readonly ConditionalWeakTable<ProcessedImage, string> _keys = new();
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
    /// in one call and are stored. <paramref name="rows"/> gives each image's feature rows (its tokens), which split the
    /// tower's output into images.
    /// </summary>
    public Tensor Features<T>(IReadOnlyList<T> images, Func<T, long> rows, Device device, Func<IReadOnlyList<T>, Tensor> encode) where T : ProcessedImage
    {
        lock (_lock)
        {
            using var scope = NewDisposeScope();
            var keys = images.Select(Key).ToArray();
            var found = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var missing = new List<(string Key, T Image)>();
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
                    var n = rows(image);
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

    string Key(ProcessedImage image) => _keys.GetValue(image, static i =>
    {
        var hash = new XxHash128();
        Span<byte> header = stackalloc byte[24];
        var (kind, a, b, c, d, e) = i switch
        {
            ImagePatches p => (1, p.GridT, p.GridH, p.GridW, p.PatchDim, 0),
            ImageTiles t => (2, t.Tiles, t.Height, t.Width, t.OriginalHeight, t.OriginalWidth),
            _ => throw new ArgumentException($"no feature cache key for {i.GetType().Name}"),
        };
        int[] fields = [kind, a, b, c, d, e];
        for (var f = 0; f < fields.Length; f++) BitConverter.TryWriteBytes(header[(4 * f)..], fields[f]);
        hash.Append(header);
        hash.Append(MemoryMarshal.AsBytes(Pixels(i).AsSpan()));
        return Convert.ToHexString(hash.GetCurrentHash());
    });

    static float[] Pixels(ProcessedImage image) => image switch
    {
        ImagePatches p => p.PixelValues,
        ImageTiles t => t.PixelValues,
        _ => throw new ArgumentException($"no pixel values in {image.GetType().Name}"),
    };

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
