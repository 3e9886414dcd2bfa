using System.Collections.Concurrent;
using Osprey.Templates;
using Osprey.Tokenization;

namespace Osprey.Datasets;

/// <summary>
/// One encoded training sample: token ids, labels (-100 where no loss) and, for packed samples, the position ids
/// (restarting at 0 for every sample packed into the row).
/// </summary>
public sealed record EncodedSample(int[] InputIds, int[] Labels, int[]? PositionIds = null)
{
    /// <summary>The label of a token without loss.</summary>
    public const int IgnoreIndex = EncodedConversation.IgnoreIndex;

    /// <summary>Number of tokens.</summary>
    public int Length => InputIds.Length;

    /// <summary>Number of tokens that carry loss.</summary>
    public int LabelledTokenCount
    {
        get
        {
            var n = 0;
            foreach (var l in Labels) if (l != IgnoreIndex) n++;
            return n;
        }
    }
}

/// <summary>How <see cref="DatasetEncoder"/> encodes rows: ms-swift's template and length flags.</summary>
public sealed class EncodingOptions
{
    /// <summary><c>--template</c>: null/"auto" for the tokenizer's own chat template, a named template, or Jinja source.</summary>
    public string? Template { get; init; }

    /// <summary><c>--system</c>.</summary>
    public string? System { get; init; }

    /// <summary><c>--loss_scale</c> for chat rows (text rows always train on every token, as ms-swift's <c>pt</c>).</summary>
    public LossScale LossScale { get; init; } = LossScale.Default;

    /// <summary><c>--max_length</c>; null for no limit.</summary>
    public int? MaxLength { get; init; }

    /// <summary><c>--truncation_strategy</c> (default delete, as ms-swift).</summary>
    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.Delete;

    /// <summary><c>--packing</c>: pack samples into rows of <see cref="MaxLength"/> tokens (requires MaxLength).</summary>
    public bool Packing { get; init; }

    /// <summary><c>--strict</c> (default true): a row the template cannot encode is an error; false skips and counts it.</summary>
    public bool Strict { get; init; } = true;

    /// <summary>Threads for encoding (<c>--dataset_num_proc</c>); 0 or less means all cores.</summary>
    public int Threads { get; init; }

    /// <summary>Extra Jinja template variables (e.g. enable_thinking).</summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }

    /// <summary>The effective number of threads.</summary>
    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;

    /// <summary>A canonical description of every option that changes the encoded output (for cache keys).</summary>
    public string Fingerprint(string templateSource) =>
        $"template={Template ?? "auto"}\ntemplate_source={templateSource}\nsystem={(System is null ? "<null>" : "=" + System)}\n" +
        $"loss_scale={LossScale.Name()}\nmax_length={MaxLength?.ToString(global::System.Globalization.CultureInfo.InvariantCulture) ?? "none"}\n" +
        $"truncation={Truncation}\npacking={Packing}\nstrict={Strict}\nextra={string.Join(",", (Extra ?? new Dictionary<string, object?>()).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value))}";
}

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

/// <summary>
/// Turns dataset rows into training samples: chat rows through the chat template (labels only on the tokens that
/// carry loss), text rows as ms-swift's <c>pt</c> does (the tokenizer's special tokens, EOS appended, loss on every
/// token but the first), then <c>--max_length</c> with <c>--truncation_strategy</c>. Thread-safe.
/// </summary>
public sealed class DatasetEncoder
{
    private readonly Tokenizer _tokenizer;
    private readonly Lazy<ChatTemplate> _template;
    private readonly TemplateOptions _templateOptions;

    /// <summary>Creates an encoder; the chat template is resolved on the first chat row (text-only data needs none).</summary>
    public DatasetEncoder(Tokenizer tokenizer, EncodingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        Options = options ?? new EncodingOptions();
        if (Options.MaxLength is <= 0) throw new OspreyException($"--max_length must be positive, got {Options.MaxLength}.");
        if (Options.Packing && Options.MaxLength is null) throw new OspreyException("--packing needs --max_length N: packed rows are N tokens long.");
        _template = new Lazy<ChatTemplate>(() => ChatTemplate.FromTokenizer(tokenizer, Options.Template));
        _templateOptions = new TemplateOptions { System = Options.System, LossScale = Options.LossScale, Extra = Options.Extra };
    }

    /// <summary>The options.</summary>
    public EncodingOptions Options { get; }

    /// <summary>The tokenizer.</summary>
    public Tokenizer Tokenizer => _tokenizer;

    /// <summary>The chat template chat rows are rendered with.</summary>
    public ChatTemplate Template => _template.Value;

    /// <summary>
    /// Encodes one row; null when it was dropped (longer than --max_length under delete, or bad under --strict false),
    /// which <paramref name="stats"/> records with the row's file and line. A bad row under --strict throws
    /// <see cref="OspreyException"/> naming the file and line.
    /// </summary>
    public EncodedSample? Encode(DatasetRow row, EncodingStats? stats = null)
    {
        ArgumentNullException.ThrowIfNull(row);
        stats?.Row();
        int[] ids, labels;
        try
        {
            if (row.Conversation is { } conversation)
            {
                var encoded = Template.Encode(_tokenizer, conversation, _templateOptions);
                ids = encoded.InputIds;
                labels = encoded.Labels;
            }
            else if (row.Text is { } text)
            {
                (ids, labels) = EncodePretraining(text);
            }
            else
            {
                throw new OspreyException("the row has neither a conversation nor a text");
            }
        }
        catch (OspreyException e)
        {
            if (Options.Strict) throw new OspreyException($"{row.Where}: {e.Message.TrimEnd('.')}; fix the row or pass --strict false to skip such rows.", e);
            stats?.Skip(row, $"{row.Where}: {e.Message.TrimEnd('.')}");
            return null;
        }

        var truncated = false;
        if (Options.MaxLength is { } max && ids.Length > max)
        {
            switch (Options.Truncation)
            {
                case TruncationStrategy.Delete:
                    stats?.Delete(row, $"{row.Where} ({ids.Length} tokens)");
                    return null;
                case TruncationStrategy.Left:
                    ids = ids[^max..];
                    labels = labels[^max..];
                    break;
                default:
                    ids = ids[..max];
                    labels = labels[..max];
                    break;
            }
            truncated = true;
        }
        var sample = new EncodedSample(ids, labels);
        stats?.Kept(sample, truncated);
        return sample;
    }

    /// <summary>
    /// A pre-training text as ms-swift's <c>pt</c> encodes it (no chat template: the generation template with
    /// <c>loss_scale all</c>): the tokenizer's special tokens (e.g. a BOS) + the text + EOS; every token carries loss
    /// except the first, which nothing predicts.
    /// </summary>
    public (int[] InputIds, int[] Labels) EncodePretraining(string text)
    {
        var body = _tokenizer.EncodeIds(text, addSpecialTokens: true);
        var eos = _tokenizer.EosToken?.Id;
        int[] ids;
        if (eos is { } e && (body.Length == 0 || body[^1] != e))
        {
            ids = new int[body.Length + 1];
            body.CopyTo(ids, 0);
            ids[^1] = e;
        }
        else ids = body;
        var labels = (int[])ids.Clone();
        if (labels.Length > 0) labels[0] = EncodedSample.IgnoreIndex;
        return (ids, labels);
    }

    /// <summary>
    /// Encodes every row on <see cref="EncodingOptions.EffectiveThreads"/> threads, in row order, dropping the rows
    /// <see cref="Encode"/> drops; then packs when --packing.
    /// </summary>
    public IReadOnlyList<EncodedSample> EncodeAll(IReadOnlyList<DatasetRow> rows, EncodingStats? stats = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var kept = EncodeUnpacked(rows, stats);
        return Options.Packing ? Pack(kept) : kept;
    }

    private List<EncodedSample> EncodeUnpacked(IReadOnlyList<DatasetRow> rows, EncodingStats? stats)
    {
        var results = new EncodedSample?[rows.Count];
        var threads = Options.EffectiveThreads;
        if (threads == 1 || rows.Count < 2)
        {
            for (var i = 0; i < rows.Count; i++) results[i] = Encode(rows[i], stats);
        }
        else
        {
            // Chunks of rows per task: keeps per-item overhead small while balancing uneven row lengths.
            var chunk = Math.Clamp(rows.Count / (threads * 16), 1, 256);
            try
            {
                Parallel.For(0, (rows.Count + chunk - 1) / chunk, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
                {
                    var end = Math.Min(rows.Count, (c + 1) * chunk);
                    for (var i = c * chunk; i < end; i++) results[i] = Encode(rows[i], stats);
                });
            }
            catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault(x => x is OspreyException) is { } first)
            {
                throw first;
            }
        }
        var kept = new List<EncodedSample>(rows.Count);
        foreach (var r in results) if (r is not null) kept.Add(r);
        return kept;
    }

    /// <summary>
    /// Encodes a stream of rows on all threads in bounded batches, yielding the samples in row order; at most
    /// <paramref name="batchSize"/> rows (default 256 per thread) are held at once. With --packing the samples go
    /// through <see cref="SequencePacker.PackStreaming"/> (a bounded buffer of samples, as ms-swift's streaming packing).
    /// </summary>
    public IEnumerable<EncodedSample> EncodeStreaming(IEnumerable<DatasetRow> rows, EncodingStats? stats = null, int batchSize = 0)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (batchSize <= 0) batchSize = 256 * Options.EffectiveThreads;
        var samples = EncodeBatches(rows, stats, batchSize);
        if (!Options.Packing) return samples;
        return SequencePacker.PackStreaming(samples.Select(s => (s.InputIds, s.Labels)), Options.MaxLength!.Value)
            .Select(p => new EncodedSample(p.InputIds, p.Labels, p.PositionIds));
    }

    private IEnumerable<EncodedSample> EncodeBatches(IEnumerable<DatasetRow> rows, EncodingStats? stats, int batchSize)
    {
        var batch = new List<DatasetRow>(batchSize);
        foreach (var row in rows)
        {
            batch.Add(row);
            if (batch.Count < batchSize) continue;
            foreach (var s in EncodeUnpacked(batch, stats)) yield return s;
            batch.Clear();
        }
        if (batch.Count > 0)
            foreach (var s in EncodeUnpacked(batch, stats)) yield return s;
    }

    /// <summary>
    /// A view of <paramref name="rows"/> that encodes row i when it is read (<c>--lazy_tokenize</c>), keeping the
    /// last <paramref name="cacheSize"/> samples. A dropped row reads as null.
    /// </summary>
    public LazyEncodedList Lazy(IReadOnlyList<DatasetRow> rows, int cacheSize = 1024, EncodingStats? stats = null)
    {
        if (Options.Packing) throw new OspreyException("--lazy_tokenize and --packing do not go together: packing needs every sample's length up front.");
        return new LazyEncodedList(this, rows, cacheSize, stats);
    }

    /// <summary>
    /// Packs samples into rows of at most --max_length tokens with <see cref="SequencePacker.Pack"/> (first-fit-decreasing,
    /// as ms-swift): labels -100 at every sample's first token, position ids restarting per sample.
    /// </summary>
    public IReadOnlyList<EncodedSample> Pack(IReadOnlyList<EncodedSample> samples)
    {
        var max = Options.MaxLength ?? throw new OspreyException("--packing needs --max_length.");
        return SequencePacker.Pack(samples.Select(s => (s.InputIds, s.Labels)).ToList(), max)
            .Select(p => new EncodedSample(p.InputIds, p.Labels, p.PositionIds)).ToList();
    }
}

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
