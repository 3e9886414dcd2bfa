namespace Osprey.Tokenization;

/// <summary>
/// A Hugging Face fast tokenizer loaded from <c>tokenizer.json</c> (plus <c>tokenizer_config.json</c>,
/// <c>special_tokens_map.json</c> and the chat template from <c>chat_template.jinja</c>/<c>chat_template.json</c>
/// or tokenizer_config.json), encoding and decoding exactly as transformers does. Thread-safe.
/// </summary>
public sealed partial class Tokenizer
{
    private Normalizer? _normalizer;
    private PreTokenizer? _preTokenizer;
    private BpeModel _model = null!;
    private PostProcessor? _postProcessor;
    private Decoder? _decoder;
    private Dictionary<int, AddedToken> _addedById = new();
    private Dictionary<string, AddedToken> _addedByContent = new(StringComparer.Ordinal);
    private AddedTokenMatcher _rawMatcher = new([]);
    private AddedTokenMatcher _normalizedMatcher = new([]);
    private Dictionary<string, object?> _templateSpecialTokens = new();
    private bool _cleanUpForcedForBpe;
    private UnicodeRegex[]? _fastSplits;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Jinja.JinjaTemplate> _templates = new();

    private Tokenizer()
    {
    }

    /// <summary>The folder it was loaded from, or null when built from strings.</summary>
    public string? SourceDirectory { get; private set; }

    /// <summary>One more than the largest token id (model vocabulary plus added tokens).</summary>
    public int VocabSize { get; private set; }

    /// <summary>bos/eos/pad/unk tokens as tokenizer_config.json (or special_tokens_map.json) names them; null when unset.</summary>
    public SpecialToken? BosToken { get; private set; }

    /// <inheritdoc cref="BosToken"/>
    public SpecialToken? EosToken { get; private set; }

    /// <inheritdoc cref="BosToken"/>
    public SpecialToken? PadToken { get; private set; }

    /// <inheritdoc cref="BosToken"/>
    public SpecialToken? UnkToken { get; private set; }

    /// <summary>
    /// tokenizer_config.json's clean_up_tokenization_spaces. Like transformers 5, decode ignores it for BPE tokenizers
    /// (it strips real spaces before punctuation) unless the config also sets
    /// clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output.
    /// </summary>
    public bool CleanUpTokenizationSpaces { get; private set; }

    /// <summary>model_max_length from tokenizer_config.json, or null when unset or effectively unlimited.</summary>
    public long? ModelMaxLength { get; private set; }

    /// <summary>The default chat template source, or null when the tokenizer has none.</summary>
    public string? ChatTemplateSource { get; private set; }

    /// <summary>Named chat templates (e.g. "tool_use") besides the default one.</summary>
    public IReadOnlyDictionary<string, string> NamedChatTemplates { get; private set; } = new Dictionary<string, string>();

    /// <summary>
    /// Variables transformers passes to every chat template besides messages: bos_token, eos_token, unk_token,
    /// pad_token and the other named special tokens from tokenizer_config.json.
    /// </summary>
    public IReadOnlyDictionary<string, object?> TemplateSpecialTokens => _templateSpecialTokens;

    /// <summary>Ids of all added tokens marked special.</summary>
    public IReadOnlyList<int> SpecialTokenIds => _addedById.Values.Where(t => t.Special).Select(t => t.Id).Order().ToArray();

    /// <summary>Encodes text; <paramref name="addSpecialTokens"/> runs the post-processor (BOS/EOS) as transformers' default does.</summary>
    public Encoding Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = t_ids ??= new List<int>(256);
        var offsets = t_offsets ??= new List<TokenOffset>(256);
        ids.Clear();
        offsets.Clear();
        EncodeInto(text, addSpecialTokens, ids, offsets);
        var result = new Encoding(ids.ToArray(), offsets.ToArray());
        TrimScratch(ids, offsets);
        return result;
    }

    /// <summary>Token ids only (skips offset bookkeeping).</summary>
    public int[] EncodeIds(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = t_ids ??= new List<int>(256);
        ids.Clear();
        EncodeInto(text, addSpecialTokens, ids, null);
        var result = ids.ToArray();
        TrimScratch(ids, null);
        return result;
    }

    // Per-thread scratch lists: encoding allocates only its results, which matters on many threads.
    [ThreadStatic] private static List<int>? t_ids;
    [ThreadStatic] private static List<TokenOffset>? t_offsets;

    private static void TrimScratch(List<int> ids, List<TokenOffset>? offsets)
    {
        // Do not keep a huge buffer alive after one very long text.
        if (ids.Capacity > 1 << 20) t_ids = null;
        if (offsets is not null && offsets.Capacity > 1 << 20) t_offsets = null;
    }

    /// <summary>Encodes many texts on all cores; the result is in input order.</summary>
    public Encoding[] EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, int maxDegreeOfParallelism = -1)
    {
        var result = new Encoding[texts.Count];
        Parallel.For(0, texts.Count, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism },
            i => result[i] = Encode(texts[i], addSpecialTokens));
        return result;
    }

    /// <summary>Token ids of many texts, encoded on all cores, in input order.</summary>
    public int[][] EncodeIdsBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, int maxDegreeOfParallelism = -1)
    {
        var result = new int[texts.Count][];
        Parallel.For(0, texts.Count, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism },
            i => result[i] = EncodeIds(texts[i], addSpecialTokens));
        return result;
    }

    private void EncodeInto(string text, bool addSpecialTokens, List<int> ids, List<TokenOffset>? offsets)
    {
        var previous = 0;
        foreach (var (start, end, token) in _rawMatcher.FindAll(text))
        {
            if (start > previous) EncodeSegment(new NormalizedText(text.Substring(previous, start - previous), previous), ids, offsets);
            ids.Add(token.Id);
            offsets?.Add(new TokenOffset(start, end));
            previous = end;
        }
        if (previous < text.Length || text.Length == 0)
        {
            EncodeSegment(new NormalizedText(previous == 0 ? text : text[previous..], previous), ids, offsets);
        }
        if (_postProcessor is not null)
        {
            var offs = offsets ?? new List<TokenOffset>(Enumerable.Repeat(default(TokenOffset), ids.Count));
            _postProcessor.Process(ids, offs, addSpecialTokens, IdToToken);
        }
    }

    private void EncodeSegment(NormalizedText segment, List<int> ids, List<TokenOffset>? offsets)
    {
        if (_normalizer is not null) segment = _normalizer.Normalize(segment);
        if (segment.Length == 0) return;
        if (_normalizedMatcher.IsEmpty)
        {
            EncodeNormalized(segment, ids, offsets);
            return;
        }
        var previous = 0;
        foreach (var (start, end, token) in _normalizedMatcher.FindAll(segment.Text))
        {
            if (start > previous) EncodeNormalized(segment.Slice(previous, start), ids, offsets);
            ids.Add(token.Id);
            offsets?.Add(new TokenOffset(segment.OriginalStart(start), segment.OriginalEnd(end - 1)));
            previous = end;
        }
        if (previous < segment.Length) EncodeNormalized(segment.Slice(previous, segment.Length), ids, offsets);
    }

    private void EncodeNormalized(NormalizedText text, List<int> ids, List<TokenOffset>? offsets)
    {
        if (_fastSplits is not null)
        {
            EncodeFast(text, 0, text.Length, 0, ids, offsets);
            return;
        }
        List<Piece> pieces;
        if (_preTokenizer is null)
        {
            pieces = [new Piece(text, false)];
        }
        else
        {
            pieces = new List<Piece>(Math.Max(4, text.Length / 4));
            _preTokenizer.Split([new Piece(text, false)], pieces);
        }
        var spans = offsets is null ? null : new List<(int Start, int End)>();
        foreach (var piece in pieces)
        {
            var first = ids.Count;
            spans?.Clear();
            if (piece.ByteLevel) _model.EncodeByteLevel(piece.Text.Text, ids, spans);
            else _model.Encode(piece.Text.Text, ids, spans);
            if (offsets is not null) AddOffsets(piece.Text, 0, piece.Text.Length, piece.ByteLevel, spans!, offsets);
        }
    }

    /// <summary>
    /// Byte-level pipelines made of isolating regex splits (Llama 3, Qwen, DeepSeek, GPT-2): split by index ranges
    /// with no intermediate strings, and look pieces up in the model's cache by their own text.
    /// </summary>
    private void EncodeFast(NormalizedText text, int from, int to, int level, List<int> ids, List<TokenOffset>? offsets)
    {
        if (from >= to) return;
        if (level == _fastSplits!.Length)
        {
            var spans = offsets is null ? null : t_spans ??= new List<(int, int)>();
            spans?.Clear();
            _model.EncodeByteLevel(text.Text.AsSpan(from, to - from), ids, spans);
            if (offsets is not null) AddOffsets(text, from, to, true, spans!, offsets);
            return;
        }
        var levels = t_matchLists ??= [];
        while (levels.Count <= level) levels.Add(new List<(int, int)>());
        var matches = levels[level];
        matches.Clear();
        _fastSplits[level].Matches(text.Text.AsSpan(from, to - from), matches);
        // Deeper levels reuse their own lists; copy this level's matches out before recursing.
        var count = matches.Count;
        Span<(int, int)> local = count <= 64 ? stackalloc (int, int)[count] : new (int, int)[count];
        for (var i = 0; i < count; i++) local[i] = matches[i];
        var previous = 0;
        foreach (var (s, e) in local)
        {
            if (s > previous) EncodeFast(text, from + previous, from + s, level + 1, ids, offsets);
            EncodeFast(text, from + s, from + e, level + 1, ids, offsets);
            previous = e;
        }
        if (from + previous < to) EncodeFast(text, from + previous, to, level + 1, ids, offsets);
    }

    [ThreadStatic] private static List<(int, int)>? t_spans;
    [ThreadStatic] private static List<List<(int, int)>>? t_matchLists;

    /// <summary>Maps the model's spans (chars of the piece, or bytes for byte-level pieces) to original offsets.</summary>
    private static void AddOffsets(NormalizedText text, int from, int to, bool byteLevel, List<(int Start, int End)> spans, List<TokenOffset> offsets)
    {
        if (!byteLevel)
        {
            foreach (var (s, e) in spans) offsets.Add(new TokenOffset(text.OriginalStart(from + s), text.OriginalEnd(from + e - 1)));
            return;
        }
        // Spans are sorted byte ranges of the piece's UTF-8: walk chars and bytes together, no allocation.
        var chars = text.Text;
        var charIndex = from;
        var charByteStart = 0;
        var charByteLength = Utf8Length(chars, charIndex, to);
        foreach (var (s, e) in spans)
        {
            while (charByteStart + charByteLength <= s)
            {
                charByteStart += charByteLength;
                charIndex += charByteLength == 4 ? 2 : 1;
                charByteLength = Utf8Length(chars, charIndex, to);
            }
            var startChar = charIndex;
            while (charByteStart + charByteLength < e)
            {
                charByteStart += charByteLength;
                charIndex += charByteLength == 4 ? 2 : 1;
                charByteLength = Utf8Length(chars, charIndex, to);
            }
            var lastChar = charByteLength == 4 ? charIndex + 1 : charIndex;
            offsets.Add(new TokenOffset(text.OriginalStart(startChar), text.OriginalEnd(lastChar)));
        }
    }

    /// <summary>UTF-8 length of the code point at char i (4 for a surrogate pair, which spans two chars).</summary>
    private static int Utf8Length(string s, int i, int end)
    {
        if (i >= end) return int.MaxValue / 4;
        var c = s[i];
        if (c < 0x80) return 1;
        if (c < 0x800) return 2;
        if (char.IsHighSurrogate(c) && i + 1 < end && char.IsLowSurrogate(s[i + 1])) return 4;
        return 3;
    }

    /// <summary>The GPT-2 byte-level form of text: its UTF-8 bytes as printable chars.</summary>
    internal static string ToByteLevel(ReadOnlySpan<char> text)
    {
        var byteCount = System.Text.Encoding.UTF8.GetByteCount(text);
        if (byteCount == text.Length)
        {
            Span<char> ascii = text.Length <= 1024 ? stackalloc char[text.Length] : new char[text.Length];
            for (var i = 0; i < text.Length; i++) ascii[i] = ByteLevelAlphabet.ByteToChar((byte)text[i]);
            return new string(ascii);
        }
        var bytes = byteCount <= 1024 ? stackalloc byte[byteCount] : new byte[byteCount];
        System.Text.Encoding.UTF8.GetBytes(text, bytes);
        var chars = byteCount <= 1024 ? stackalloc char[byteCount] : new char[byteCount];
        for (var i = 0; i < bytes.Length; i++) chars[i] = ByteLevelAlphabet.ByteToChar(bytes[i]);
        return new string(chars);
    }

    /// <summary>
    /// Decodes ids to text as transformers' <c>decode</c> does (decoder pipeline, then clean_up_tokenization_spaces
    /// when the config asks for it unless overridden).
    /// </summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>(ids.Count);
        foreach (var id in ids)
        {
            if (skipSpecialTokens && _addedById.TryGetValue(id, out var added) && added.Special) continue;
            var token = IdToToken(id);
            if (token is not null) tokens.Add(token);
        }
        var text = _decoder is null ? string.Join(' ', tokens) : string.Concat(_decoder.DecodeChain(tokens));
        return cleanUpTokenizationSpaces ?? (CleanUpTokenizationSpaces && _cleanUpForcedForBpe) ? CleanUpTokenization(text) : text;
    }

    /// <summary>transformers' clean_up_tokenization: removes spaces before punctuation and common English contractions.</summary>
    public static string CleanUpTokenization(string text) => text
        .Replace(" .", ".", StringComparison.Ordinal)
        .Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal)
        .Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal)
        .Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal)
        .Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal)
        .Replace(" 're", "'re", StringComparison.Ordinal);

    /// <summary>
    /// The bytes token <paramref name="id"/> stands for: for a byte-level or byte-fallback token its raw bytes, which
    /// may be an incomplete UTF-8 sequence (where <see cref="Decode"/> gives U+FFFD); otherwise the UTF-8 of its
    /// decoded text. Added tokens are their content's UTF-8. Empty for an id outside the vocabulary.
    /// </summary>
    public byte[] TokenBytes(int id)
    {
        if (_addedById.TryGetValue(id, out var added)) return System.Text.Encoding.UTF8.GetBytes(added.Content);
        if (_model.IdToToken(id) is not { } token) return [];
        return _decoder?.RawBytes(token) ?? System.Text.Encoding.UTF8.GetBytes(Decode([id]));
    }

    /// <summary>The token string of an id (vocabulary or added token), or null when out of range.</summary>
    public string? IdToToken(int id) => _addedById.TryGetValue(id, out var added) ? added.Content : _model.IdToToken(id);

    /// <summary>The id of a token string (vocabulary or added token), or null.</summary>
    public int? TokenToId(string token) => _addedByContent.TryGetValue(token, out var added) ? added.Id : _model.TokenToId(token);

    /// <summary>True for added tokens marked special (skipped by <c>skip_special_tokens</c>).</summary>
    public bool IsSpecial(int id) => _addedById.TryGetValue(id, out var added) && added.Special;
}
