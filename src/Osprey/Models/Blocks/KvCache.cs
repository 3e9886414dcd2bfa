using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Pre-allocated key/value cache: per layer [B, kv_heads, capacity, head_dim] buffers written in place,
/// so decoding allocates nothing per step for the cache and attention reads a growing view of it.
/// </summary>
public sealed partial class KvCache : IDisposable
{
    readonly Tensor[] _keys;
    readonly Tensor[] _values;

    /// <summary>Slots filled so far (the same for every row; padding fills slots too).</summary>
    public long Length { get; private set; }

    /// <summary>Slots available.</summary>
    public long Capacity { get; }

    /// <summary>Rows.</summary>
    public long Batch { get; }

    /// <summary>Allocates a cache for <paramref name="spec"/>'s layers.</summary>
    public KvCache(DecoderSpec spec, long batch, long capacity, ScalarType dtype, Device device)
    {
        Batch = batch;
        Capacity = capacity;
        var n = spec.Layers.Count;
        _keys = new Tensor[n];
        _values = new Tensor[n];
        for (int i = 0; i < n; i++)
        {
            _keys[i] = zeros(batch, spec.NumKvHeads, capacity, spec.HeadDim, dtype: dtype, device: device);
            _values[i] = zeros(batch, spec.NumKvHeads, capacity, spec.HeadDim, dtype: dtype, device: device);
        }
    }

    /// <summary>
    /// Writes this step's keys/values [B, kv_heads, T, D] for <paramref name="layer"/> after the filled slots
    /// and returns views of everything filled so far including them.
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        if (Slot is not null) return AppendAtSlot(layer, keys, values);
        var t = keys.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {t} slots exceed its capacity of {Capacity}.");
        _keys[layer].narrow(2, Length, t).copy_(keys);
        _values[layer].narrow(2, Length, t).copy_(values);
        return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
    }

    /// <summary>Marks <paramref name="count"/> more slots filled (after all layers have appended).</summary>
    public void Advance(long count) => Length += count;

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
