namespace Osprey.Datasets;

/// <summary>
/// <c>--lazy_tokenize</c>: rows encoded when read, with a small cache of recent samples. Thread-safe. A row the
/// encoder drops reads as null (the trainer skips it).
/// </summary>
public sealed class LazyEncodedList : IReadOnlyList<EncodedSample?>
{
    private readonly DatasetEncoder _encoder;
    private readonly IReadOnlyList<DatasetRow> _rows;
    private readonly int _cacheSize;
    private readonly EncodingStats? _stats;
    private readonly Dictionary<int, EncodedSample?> _cache = [];
    private readonly Queue<int> _order = new();
    private readonly Lock _lock = new();

    internal LazyEncodedList(DatasetEncoder encoder, IReadOnlyList<DatasetRow> rows, int cacheSize, EncodingStats? stats)
    {
        ArgumentNullException.ThrowIfNull(rows);
        _encoder = encoder;
        _rows = rows;
        _cacheSize = Math.Max(1, cacheSize);
        _stats = stats;
    }

    /// <summary>Number of rows (dropped ones included).</summary>
    public int Count => _rows.Count;

    /// <summary>How many rows have been encoded so far (cache misses).</summary>
    public int Encodings { get; private set; }

    /// <summary>Row <paramref name="index"/>, encoded now unless it is in the cache; null when dropped.</summary>
    public EncodedSample? this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _rows.Count);
            lock (_lock)
            {
                if (_cache.TryGetValue(index, out var hit)) return hit;
            }
            var sample = _encoder.Encode(_rows[index], _stats);
            lock (_lock)
            {
                Encodings++;
                if (_cache.TryAdd(index, sample))
                {
                    _order.Enqueue(index);
                    while (_order.Count > _cacheSize) _cache.Remove(_order.Dequeue());
                }
            }
            return sample;
        }
    }

    /// <inheritdoc/>
    public IEnumerator<EncodedSample?> GetEnumerator()
    {
        for (var i = 0; i < Count; i++) yield return this[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
