using System.Collections.Concurrent;
using System.Text.Json;

namespace Osprey.Tokenization;

/// <summary>
/// The BPE model of tokenizer.json: byte-level (GPT-2 style) and SentencePiece-style with <c>byte_fallback</c>,
/// <c>fuse_unk</c>, <c>ignore_merges</c>, continuing-subword prefix and end-of-word suffix. Merges apply lowest
/// rank first, leftmost first among equal ranks, as HF's priority-queue merge does.
/// </summary>
internal sealed partial class BpeModel
{
    private const int CacheWordLimit = 128;
    private const int CacheCapacity = 200_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabLookup;
    private readonly string[] _idToToken;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int[] _singleChar = new int[65536];
    private readonly int[] _byteFallback = new int[256];
    private readonly int? _unkId;
    private readonly bool _fuseUnk;
    private readonly bool _byteFallbackEnabled;
    private readonly bool _ignoreMerges;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private int _cacheCount;
    private const char WordStart = '\u2581';
    private readonly bool _wordStartSplit;
    private readonly HashSet<char> _joinsWordStart = [];
    private readonly ConcurrentDictionary<string, (int[] Ids, (int Start, int End)[] Spans)> _rawCache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int[] Ids, (int Start, int End)[] Spans)>.AlternateLookup<ReadOnlySpan<char>> _rawLookup;
    private readonly ConcurrentDictionary<string, (int[] Ids, (int Start, int End)[] Spans)> _cache = new(StringComparer.Ordinal);

    public BpeModel(JsonElement model, string path)
    {
        var vocab = model.GetProperty("vocab");
        _vocab = new Dictionary<string, int>(vocab.EnumerateObject().Count(), StringComparer.Ordinal);
        var maxId = -1;
        foreach (var p in vocab.EnumerateObject())
        {
            var id = p.Value.GetInt32();
            _vocab[p.Name] = id;
            maxId = Math.Max(maxId, id);
        }
        _vocabLookup = _vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _rawLookup = _rawCache.GetAlternateLookup<ReadOnlySpan<char>>();
        _idToToken = new string[maxId + 1];
        foreach (var (token, id) in _vocab) _idToToken[id] = token;

        _prefix = OptionalString(model, "continuing_subword_prefix");
        _suffix = OptionalString(model, "end_of_word_suffix");
        var unk = OptionalString(model, "unk_token");
        if (unk is not null)
        {
            if (!_vocab.TryGetValue(unk, out var unkId))
                throw new OspreyException($"tokenizer.json {path}.unk_token '{unk}' is not in the vocabulary; fix the file or remove unk_token.");
            _unkId = unkId;
        }
        _fuseUnk = TokenizerJson.Bool(model, "fuse_unk", false);
        _byteFallbackEnabled = TokenizerJson.Bool(model, "byte_fallback", false);
        _ignoreMerges = TokenizerJson.Bool(model, "ignore_merges", false);
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            throw new OspreyException($"tokenizer.json {path}.dropout is {dropout.GetDouble()}; BPE dropout (a training-time augmentation) is not supported for encoding, set it to null.");

        var merges = model.GetProperty("merges");
        _merges = new Dictionary<long, (int, int)>(merges.GetArrayLength(), PairKeyComparer.Instance);
        var rank = 0;
        foreach (var m in merges.EnumerateArray())
        {
            string a, b;
            if (m.ValueKind == JsonValueKind.String)
            {
                var s = m.GetString()!;
                var space = s.IndexOf(' ', 1);
                if (space < 0) throw new OspreyException($"tokenizer.json {path}.merges[{rank}] '{s}' is not two tokens separated by a space.");
                a = s[..space];
                b = s[(space + 1)..];
            }
            else
            {
                a = m[0].GetString()!;
                b = m[1].GetString()!;
            }
            if (!_vocab.TryGetValue(a, out var ida) || !_vocab.TryGetValue(b, out var idb))
                throw new OspreyException($"tokenizer.json {path}.merges[{rank}] ('{a}', '{b}') uses a token missing from the vocabulary.");
            var merged = _prefix is { Length: > 0 } && b.StartsWith(_prefix, StringComparison.Ordinal) ? a + b[_prefix.Length..] : a + b;
            if (!_vocab.TryGetValue(merged, out var newId))
                throw new OspreyException($"tokenizer.json {path}.merges[{rank}]: the merged token '{merged}' is not in the vocabulary.");
            _merges.TryAdd(Key(ida, idb), (rank, newId));
            rank++;
        }

        // Cutting whole lines into words is exact when the vocabulary is SentencePiece-style (no subword prefix or
        // suffix) and we know which chars ever stand right before '▁' inside a token.
        if (_prefix is null && _suffix is null && _vocab.Keys.Any(t => t.Length > 1 && t[0] == WordStart))
        {
            foreach (var token in _vocab.Keys)
            {
                for (var i = 1; i < token.Length; i++)
                {
                    if (token[i] == WordStart && token[i - 1] != WordStart) _joinsWordStart.Add(token[i - 1]);
                }
            }
            _wordStartSplit = true;
        }

        Array.Fill(_singleChar, -1);
        if (_prefix is not { Length: > 0 } && _suffix is not { Length: > 0 })
        {
            foreach (var (token, id) in _vocab)
            {
                if (token.Length == 1) _singleChar[token[0]] = id;
            }
        }
        for (var b = 0; b < 256; b++)
        {
            _byteFallback[b] = _vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
        }
    }

    public int VocabSize => _idToToken.Length;

    public string? IdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;

    private static string? OptionalString(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0 ? v.GetString() : null;

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>
    /// Encodes one pre-tokenized word, appending ids and each token's [start, end) char span within the word.
    /// </summary>
    public void Encode(string word, List<int> ids, List<(int Start, int End)>? spans)
    {
        if (word.Length == 0) return;
        if (_wordStartSplit && word.Length > 16)
        {
            EncodeInWords(word, ids, spans);
            return;
        }
        EncodeCached(word, ids, spans);
    }

    /// <summary>
    /// SentencePiece-style vocabularies (Llama 2, Gemma) with no pre-tokenizer hand the model whole lines. No merge
    /// can produce a token holding "X▁" for a char X that never precedes '▁' inside a vocabulary token, so the line
    /// can be cut before every such '▁' and the pieces encoded (and cached) one by one with exactly the same result.
    /// </summary>
    private void EncodeInWords(string word, List<int> ids, List<(int Start, int End)>? spans)
    {
        var start = 0;
        for (var i = 1; i <= word.Length; i++)
        {
            if (i < word.Length && !(word[i] == WordStart && word[i - 1] != WordStart && !_joinsWordStart.Contains(word[i - 1]))) continue;
            var first = spans?.Count ?? 0;
            EncodeCached(start == 0 && i == word.Length ? word : word.Substring(start, i - start), ids, spans);
            if (spans is not null && start > 0)
            {
                for (var k = first; k < spans.Count; k++) spans[k] = (spans[k].Start + start, spans[k].End + start);
            }
            start = i;
        }
    }

    private void EncodeCached(string word, List<int> ids, List<(int Start, int End)>? spans)
    {
        if (word.Length <= CacheWordLimit && _cache.TryGetValue(word, out var cached))
        {
            ids.AddRange(cached.Ids);
            spans?.AddRange(cached.Spans);
            return;
        }
        var entry = Compute(word);
        if (word.Length <= CacheWordLimit && Volatile.Read(ref _cacheCount) < CacheCapacity && _cache.TryAdd(word, entry))
            Interlocked.Increment(ref _cacheCount);
        ids.AddRange(entry.Ids);
        spans?.AddRange(entry.Spans);
    }

    /// <summary>
    /// Encodes a piece that the byte-level pre-tokenizer maps to bytes-as-chars, caching by the piece's own text so
    /// that a repeated word costs one lookup and no allocation. Spans are in bytes of the piece's UTF-8.
    /// </summary>
    public void EncodeByteLevel(ReadOnlySpan<char> piece, List<int> ids, List<(int Start, int End)>? spans)
    {
        if (piece.Length == 0) return;
        if (piece.Length <= CacheWordLimit && _rawLookup.TryGetValue(piece, out var cached))
        {
            ids.AddRange(cached.Ids);
            spans?.AddRange(cached.Spans);
            return;
        }
        var entry = Compute(Tokenizer.ToByteLevel(piece));
        if (piece.Length <= CacheWordLimit && Volatile.Read(ref _cacheCount) < CacheCapacity && _rawCache.TryAdd(piece.ToString(), entry))
            Interlocked.Increment(ref _cacheCount);
        ids.AddRange(entry.Ids);
        spans?.AddRange(entry.Spans);
    }
}

/// <summary>
/// Hashes (a &lt;&lt; 32 | b) pair keys well: long's own hash is a ^ b, which collides for most token-id pairs and made
/// merge lookups crawl.
/// </summary>
internal sealed class PairKeyComparer : IEqualityComparer<long>
{
    public static readonly PairKeyComparer Instance = new();

    public bool Equals(long x, long y) => x == y;

    public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
}
