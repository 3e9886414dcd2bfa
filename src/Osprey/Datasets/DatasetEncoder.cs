using System.Text.Json;
using Osprey.Templates;
using Osprey.Tokenization;

namespace Osprey.Datasets;

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
    private readonly Lazy<int> _longestToken;

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
        _longestToken = new Lazy<int>(() => LongestTokenChars(tokenizer));
    }

    /// <summary>
    /// The most characters of one text or message that are tokenized under --max_length (null: no limit): no token
    /// spells more characters than the vocabulary's longest, so a longer text is surely over --max_length, and only
    /// this much of it (the start, or the end under --truncation_strategy left) is encoded. Keeps the memory and time
    /// of a multi-megabyte row bounded by --max_length instead of by the row.
    /// </summary>
    public int? CharacterLimit => Options.MaxLength is { } max ? (int)Math.Min(int.MaxValue, (max + 4L) * _longestToken.Value) : null;

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
        long cutFrom = 0;
        if (CharacterLimit is { } limit && Bounded(row, limit, out var shorter, out var longest))
        {
            row = shorter;
            cutFrom = longest;
        }
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
        if (Options.MaxLength is { } max && (ids.Length > max || cutFrom > 0))
        {
            switch (Options.Truncation)
            {
                case TruncationStrategy.Delete:
                    stats?.Delete(row, cutFrom > 0 ? $"{row.Where} ({cutFrom:N0} characters in one text)" : $"{row.Where} ({ids.Length} tokens)");
                    return null;
                case TruncationStrategy.Left:
                    ids = ids[^Math.Min(max, ids.Length)..];
                    labels = labels[^Math.Min(max, labels.Length)..];
                    break;
                default:
                    ids = ids[..Math.Min(max, ids.Length)];
                    labels = labels[..Math.Min(max, labels.Length)];
                    break;
            }
            truncated = true;
        }
        var sample = new EncodedSample(ids, labels);
        stats?.Kept(sample, truncated);
        return sample;
    }

    /// <summary>
    /// The row with every text or string message content over <paramref name="limit"/> characters cut to its first (or,
    /// under --truncation_strategy left, last) <paramref name="limit"/>; false when none is that long.
    /// </summary>
    private bool Bounded(DatasetRow row, int limit, out DatasetRow shorter, out long longest)
    {
        var keepEnd = Options.Truncation == TruncationStrategy.Left;
        long found = 0;
        string? text = row.Text;
        if (text is not null && text.Length > limit)
        {
            found = text.Length;
            text = Cut(text, limit, keepEnd);
        }
        var conversation = BoundedConversation(row.Conversation, limit, keepEnd, ref found);
        var rejected = BoundedConversation(row.Rejected, limit, keepEnd, ref found);
        shorter = found > 0 ? row with { Text = text, Conversation = conversation, Rejected = rejected } : row;
        longest = found;
        return found > 0;
    }

    private static Conversation? BoundedConversation(Conversation? conversation, int limit, bool keepEnd, ref long found)
    {
        if (conversation is null) return null;
        List<object?>? messages = null;
        for (var i = 0; i < conversation.Messages.Count; i++)
        {
            var message = conversation.Messages[i];
            Dictionary<string, object?>? copy = null;
            switch (message)
            {
                case JsonElement { ValueKind: JsonValueKind.Object } e when e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String && c.GetString() is { } s && s.Length > limit:
                    copy = e.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value);
                    found = Math.Max(found, s.Length);
                    copy["content"] = Cut(s, limit, keepEnd);
                    break;
                case IReadOnlyDictionary<string, object?> d when d.TryGetValue("content", out var v) && v is string s && s.Length > limit:
                    copy = new Dictionary<string, object?>(d);
                    found = Math.Max(found, s.Length);
                    copy["content"] = Cut(s, limit, keepEnd);
                    break;
            }
            if (copy is null) continue;
            messages ??= [.. conversation.Messages];
            messages[i] = copy;
        }
        return messages is null ? conversation : conversation with { Messages = messages };
    }

    // Never splits a surrogate pair.
    private static string Cut(string text, int limit, bool keepEnd)
    {
        if (keepEnd)
        {
            var start = text.Length - limit;
            if (char.IsLowSurrogate(text[start])) start++;
            return text[start..];
        }
        var end = limit;
        if (char.IsHighSurrogate(text[end - 1])) end--;
        return text[..end];
    }

    private static int LongestTokenChars(Tokenizer tokenizer)
    {
        var longest = 1;
        for (var id = 0; id < tokenizer.VocabSize; id++)
            if (tokenizer.IdToToken(id) is { Length: var n } && n > longest) longest = n;
        return longest;
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
