using System.Collections.Concurrent;

namespace Osprey.Datasets;

/// <summary>Counts of one encoding pass, and where the rows that were dropped are.</summary>
public sealed class EncodingStats
{
    private long _rows, _samples, _tokens, _labelled, _truncated;
    private readonly ConcurrentQueue<(string Source, long Line, string Text)> _deleted = new();
    private readonly ConcurrentQueue<(string Source, long Line, string Text)> _skipped = new();

    /// <summary>Rows seen.</summary>
    public long Rows => Interlocked.Read(ref _rows);

    /// <summary>Samples kept (before packing).</summary>
    public long Samples => Interlocked.Read(ref _samples);

    /// <summary>Tokens of the kept samples.</summary>
    public long Tokens => Interlocked.Read(ref _tokens);

    /// <summary>Loss-carrying tokens of the kept samples.</summary>
    public long LabelledTokens => Interlocked.Read(ref _labelled);

    /// <summary>Samples cut to --max_length (left/right).</summary>
    public long Truncated => Interlocked.Read(ref _truncated);

    /// <summary>Rows dropped by --truncation_strategy delete: "file line N: 5000 tokens".</summary>
    public IReadOnlyList<string> Deleted => InRowOrder(_deleted);

    /// <summary>Rows skipped under --strict false: "file line N: reason".</summary>
    public IReadOnlyList<string> Skipped => InRowOrder(_skipped);

    // Rows are encoded in parallel; report them by file, then line.
    private static string[] InRowOrder(ConcurrentQueue<(string Source, long Line, string Text)> rows) =>
        rows.OrderBy(r => r.Source, StringComparer.Ordinal).ThenBy(r => r.Line).Select(r => r.Text).ToArray();

    internal void Row() => Interlocked.Increment(ref _rows);

    internal void Kept(EncodedSample s, bool truncated)
    {
        Interlocked.Increment(ref _samples);
        Interlocked.Add(ref _tokens, s.Length);
        Interlocked.Add(ref _labelled, s.LabelledTokenCount);
        if (truncated) Interlocked.Increment(ref _truncated);
    }

    internal void Delete(DatasetRow row, string text) => _deleted.Enqueue((row.Source, row.Line, text));

    internal void Skip(DatasetRow row, string text) => _skipped.Enqueue((row.Source, row.Line, text));

    /// <summary>Writes the warnings (deleted and skipped rows, the first <paramref name="limit"/> of each by place) and a summary line.</summary>
    public void Report(TextWriter log, int? maxLength, int limit = 10)
    {
        var deleted = Deleted;
        foreach (var d in deleted.Take(limit))
            log.WriteLine($"warning: {d} is longer than --max_length {maxLength}; deleted (--truncation_strategy delete).");
        if (deleted.Count > limit) log.WriteLine($"warning: ... and {deleted.Count - limit} more rows deleted as longer than --max_length {maxLength}.");
        var skipped = Skipped;
        foreach (var s in skipped.Take(limit)) log.WriteLine($"warning: skipped {s} (--strict false).");
        if (skipped.Count > limit) log.WriteLine($"warning: ... and {skipped.Count - limit} more rows skipped (--strict false).");
        log.WriteLine($"encoded {Rows} rows: {Samples} samples, {Tokens} tokens ({LabelledTokens} with loss); {deleted.Count} deleted, {Truncated} truncated, {skipped.Count} skipped.");
    }
}
