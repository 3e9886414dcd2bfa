using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Pre-allocated key/value cache: per layer [B, kv_heads, capacity, head_dim] buffers written in place,
/// so decoding allocates nothing per step for the cache and attention reads a growing view of it.
/// </summary>
/// <remarks>
/// The serving engine uses one cache as a pool of slots, one row per request: <see cref="Row"/> gives a
/// one-row view for a request's prefill, and <see cref="BeginSlotStep"/> switches the cache into a mode where
/// each row writes its new key/value at its own position (rows of a batch have different lengths).
/// </remarks>
public sealed partial class KvCache : IDisposable
{
    readonly Tensor[] _keys;
    readonly Tensor[] _values;
    Tensor? _slotIndex;   // [rows, kv_heads, 1, head_dim] write positions, during a slot step
    long _slotRows, _slotKeys;

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
            // The cache is disposed by its owner, never by a dispose scope that happens to be open.
            _keys[i] = zeros(batch, spec.NumKvHeads, capacity, spec.HeadDim, dtype: dtype, device: device).DetachFromDisposeScope();
            _values[i] = zeros(batch, spec.NumKvHeads, capacity, spec.HeadDim, dtype: dtype, device: device).DetachFromDisposeScope();
        }
    }

    KvCache(Tensor[] keys, Tensor[] values, long length)
    {
        _keys = keys;
        _values = values;
        Batch = keys[0].shape[0];
        Capacity = keys[0].shape[2];
        Length = length;
    }

    /// <summary>
    /// A view of row <paramref name="row"/> alone, as a one-row cache already holding <paramref name="length"/>
    /// positions: a forward pass over it writes into this cache's buffers (a request's prefill into its slot).
    /// Disposing the view frees nothing of this cache.
    /// </summary>
    public KvCache Row(long row, long length = 0) => Rows(row, 1, length);

    /// <summary>A view of rows [<paramref name="first"/>, first + <paramref name="count"/>), as <see cref="Row"/> gives one.</summary>
    public KvCache Rows(long first, long count, long length = 0)
    {
        if (first < 0 || count < 1 || first + count > Batch) throw new ArgumentOutOfRangeException(nameof(first), $"rows {first}..{first + count - 1} are outside the cache's {Batch} rows");
        return new KvCache(_keys.Select(k => k.narrow(0, first, count)).ToArray(), _values.Select(v => v.narrow(0, first, count)).ToArray(), length);
    }

    /// <summary>Copies the first <paramref name="length"/> positions of row <paramref name="from"/> over row <paramref name="to"/> in every layer.</summary>
    public void CopyRow(long from, long to, long length)
    {
        if (from == to || length == 0) return;
        for (int i = 0; i < _keys.Length; i++)
        {
            _keys[i].narrow(0, to, 1).narrow(2, 0, length).copy_(_keys[i].narrow(0, from, 1).narrow(2, 0, length));
            _values[i].narrow(0, to, 1).narrow(2, 0, length).copy_(_values[i].narrow(0, from, 1).narrow(2, 0, length));
        }
    }

    /// <summary>
    /// Starts a decode step over rows [0, <paramref name="rows"/>) in which row b writes its one new key/value at
    /// position <paramref name="writePositions"/>[b] (int64 on the cache's device) and attention reads positions
    /// [0, <paramref name="keyLength"/>) of every row (the caller masks what each row may see). Ends with
    /// <see cref="EndSlotStep"/>.
    /// </summary>
    public void BeginSlotStep(long rows, Tensor writePositions, long keyLength)
    {
        if (rows < 1 || rows > Batch) throw new ArgumentOutOfRangeException(nameof(rows));
        if (keyLength < 1 || keyLength > Capacity) throw new ArgumentOutOfRangeException(nameof(keyLength));
        var k = _keys[0];
        _slotIndex?.Dispose();
        _slotIndex = writePositions.view(rows, 1, 1, 1).expand(rows, k.shape[1], 1, k.shape[3]).contiguous();
        (_slotRows, _slotKeys) = (rows, keyLength);
    }

    /// <summary>Leaves slot-step mode.</summary>
    public void EndSlotStep()
    {
        _slotIndex?.Dispose();
        _slotIndex = null;
    }

    /// <summary>
    /// Writes this step's keys/values [B, kv_heads, T, D] for <paramref name="layer"/> after the filled slots
    /// and returns views of everything filled so far including them.
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        if (_slotIndex is not null)
        {
            var kRows = _keys[layer].narrow(0, 0, _slotRows);
            var vRows = _values[layer].narrow(0, 0, _slotRows);
            kRows.scatter_(2, _slotIndex, keys);
            vRows.scatter_(2, _slotIndex, values);
            return (kRows.narrow(2, 0, _slotKeys), vRows.narrow(2, 0, _slotKeys));
        }
        var t = keys.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {t} slots exceed its capacity of {Capacity}.");
        _keys[layer].narrow(2, Length, t).copy_(keys);
        _values[layer].narrow(2, Length, t).copy_(values);
        return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
    }

    /// <summary>
    /// During a slot step of one new position per row on CUDA: rotates the query heads of <paramref name="heads"/>
    /// [rows, 1, qHeads + 2 kvHeads, D] (a view of the q/k/v projection output) in place and writes the rotated keys and
    /// the values straight into this layer's cache, in one fused kernel (<see cref="Runtime.FusedKernels.RopeIntoCache"/>);
    /// returns the keys and values attention reads, as <see cref="Append"/> would. Null when the fused path does not apply
    /// (not a slot step, several positions, no kernels, a layout it does not take): the caller then rotates and appends.
    /// </summary>
    public (Tensor Keys, Tensor Values)? TryAppendRotated(int layer, Tensor heads, int qHeads, Tensor cos, Tensor sin)
    {
        if (_slotIndex is null || heads.shape[1] != 1 || heads.shape[0] != _slotRows || heads.requires_grad) return null;
        if (!Runtime.FusedKernels.Usable(heads) || !Runtime.FusedKernels.RopeFits(heads, cos, sin)) return null;
        var kRows = _keys[layer].narrow(0, 0, _slotRows);
        var vRows = _values[layer].narrow(0, 0, _slotRows);
        if (heads.shape[2] != qHeads + 2 * kRows.shape[1] || kRows.dtype != heads.dtype || heads.stride(3) != 1) return null;
        Runtime.FusedKernels.RopeIntoCache(heads, qHeads, cos, sin, kRows, vRows, _slotIndex);
        return (kRows.narrow(2, 0, _slotKeys), vRows.narrow(2, 0, _slotKeys));
    }

    /// <summary>Layer <paramref name="layer"/>'s key and value buffers [B, kv_heads, capacity, head_dim] (the managed CPU decoder writes and reads them in place).</summary>
    internal (Tensor Keys, Tensor Values) Buffers(int layer) => (_keys[layer], _values[layer]);

    /// <summary>Whether a slot step is in progress (<see cref="BeginSlotStep"/>).</summary>
    internal bool InSlotStep => _slotIndex is not null;

    /// <summary>Marks <paramref name="count"/> more slots filled (after all layers have appended).</summary>
    public void Advance(long count)
    {
        if (_slotIndex is null) Length += count;
    }

    /// <summary>Sets how many positions count as filled (a row view resuming a chunked prefill).</summary>
    public void SetLength(long length)
    {
        if (length < 0 || length > Capacity) throw new ArgumentOutOfRangeException(nameof(length));
        Length = length;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _slotIndex?.Dispose();
        // A row view's tensors are views: disposing them frees handles, not the pool's storage.
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
