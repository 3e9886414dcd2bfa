using System.Runtime.CompilerServices;
using Osprey.Tokenization;

namespace Osprey.Inference.Constraints;

/// <summary>
/// What constrained decoding precomputes once per tokenizer: each token's output bytes, a trie over them, the
/// automaton's states interned to numbers with a byte transition table, and a cache of allowed-token masks per
/// state. A mask walks the trie once, stepping the automaton once per trie node (not once per token), and a
/// subtree is skipped as soon as its prefix is refused; inside a string nearly every step is a table lookup.
/// Shared by every engine over the same tokenizer, so access is serialized.
/// </summary>
internal sealed class TokenVocabulary
{
    static readonly ConditionalWeakTable<Tokenizer, TokenVocabulary> s_byTokenizer = [];

    /// <summary>The vocabulary of <paramref name="tokenizer"/>, built on first use.</summary>
    public static TokenVocabulary For(Tokenizer tokenizer) => s_byTokenizer.GetValue(tokenizer, t => new TokenVocabulary(t));

    /// <summary>Most automaton states and masks kept; past this the tables start again (a bound on memory, not on correctness).</summary>
    const int MaxStates = 50_000, MaxMasks = 1024;

    readonly object _lock = new();
    readonly byte[]?[] _bytes;
    // The trie, flattened: node n's edges are _edgeLabel/_edgeTarget[_edgeStart[n] .. _edgeStart[n + 1]);
    // the tokens ending at node n are _ends[_endStart[n] .. _endStart[n + 1]).
    readonly int[] _edgeStart, _edgeTarget, _endStart, _ends;
    readonly byte[] _edgeLabel;

    readonly Dictionary<GrammarState, int> _ids = [];
    readonly List<GrammarState> _states = [];
    readonly List<int[]?> _next = [];
    readonly Dictionary<int, ulong[]> _masks = [];

    /// <summary>Token ids 0 .. Size - 1 have entries (the tokenizer's vocabulary; a model's padded rows are never allowed).</summary>
    public int Size { get; }

    TokenVocabulary(Tokenizer tokenizer)
    {
        Size = tokenizer.VocabSize;
        _bytes = new byte[]?[Size];
        for (var id = 0; id < Size; id++) _bytes[id] = BytesOf(tokenizer, id);
        var children = new List<Dictionary<byte, int>> { new() };
        var ends = new List<List<int>?> { null };
        for (var id = 0; id < Size; id++)
        {
            if (_bytes[id] is not { Length: > 0 } bytes) continue;
            var node = 0;
            foreach (var b in bytes)
            {
                if (!children[node].TryGetValue(b, out var child))
                {
                    child = children.Count;
                    children[node][b] = child;
                    children.Add([]);
                    ends.Add(null);
                }
                node = child;
            }
            (ends[node] ??= []).Add(id);
        }
        var count = children.Count;
        _edgeStart = new int[count + 1];
        _endStart = new int[count + 1];
        var labels = new List<byte>();
        var targets = new List<int>();
        var endList = new List<int>();
        for (var n = 0; n < count; n++)
        {
            _edgeStart[n] = labels.Count;
            foreach (var (b, child) in children[n].OrderBy(e => e.Key))
            {
                labels.Add(b);
                targets.Add(child);
            }
            _endStart[n] = endList.Count;
            if (ends[n] is { } e) endList.AddRange(e);
        }
        _edgeStart[count] = labels.Count;
        _endStart[count] = endList.Count;
        _edgeLabel = [.. labels];
        _edgeTarget = [.. targets];
        _ends = [.. endList];
    }

    /// <summary>
    /// The bytes a token adds to the output: <c>&lt;0xNN&gt;</c> byte tokens their byte, byte-level pieces that
    /// end inside a UTF-8 character their raw bytes, others their decoded text (a sentencepiece word start keeps
    /// its space). Special tokens have none: the grammar never allows them.
    /// </summary>
    static byte[]? BytesOf(Tokenizer tokenizer, int id)
    {
        if (tokenizer.IsSpecial(id)) return null;
        var piece = tokenizer.IdToToken(id);
        if (piece is null) return null;
        if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
            byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var single))
            return [single];
        var text = tokenizer.Decode([id], skipSpecialTokens: false, cleanUpTokenizationSpaces: false);
        if (text.Contains('\uFFFD') && piece.All(c => ByteLevelAlphabet.CharToByte(c) >= 0))
            return piece.Select(c => (byte)ByteLevelAlphabet.CharToByte(c)).ToArray();
        if (piece.StartsWith('\u2581') && !text.StartsWith(' ')) text = " " + text;
        return System.Text.Encoding.UTF8.GetBytes(text);
    }

    /// <summary>The bytes token <paramref name="id"/> writes (empty for special and unknown ids).</summary>
    public ReadOnlySpan<byte> Bytes(int id) => id >= 0 && id < Size ? _bytes[id] : default;

    /// <summary>
    /// The tokens allowed after <paramref name="state"/>, a bit per id (ulong words): those whose bytes keep the
    /// output a prefix of a valid value. End-of-sequence is the caller's to add (when the state can end).
    /// </summary>
    public ulong[] Allowed(GrammarState state)
    {
        lock (_lock)
        {
            if (_states.Count >= MaxStates)
            {
                // Start the tables again between walks (never during one, whose numbers would go stale).
                _ids.Clear();
                _states.Clear();
                _next.Clear();
                _masks.Clear();
            }
            var start = Intern(state);
            if (_masks.TryGetValue(start, out var cached)) return cached;
            var mask = new ulong[(Size + 63) / 64];
            var stack = new Stack<(int Node, int State)>();
            stack.Push((0, start));
            while (stack.Count > 0)
            {
                var (node, s) = stack.Pop();
                for (var e = _edgeStart[node]; e < _edgeStart[node + 1]; e++)
                {
                    var next = Next(s, _edgeLabel[e]);
                    if (next < 0) continue;
                    var target = _edgeTarget[e];
                    for (var t = _endStart[target]; t < _endStart[target + 1]; t++) mask[_ends[t] >> 6] |= 1UL << (_ends[t] & 63);
                    if (_edgeStart[target + 1] > _edgeStart[target]) stack.Push((target, next));
                }
            }
            if (_masks.Count >= MaxMasks) _masks.Clear();
            _masks[start] = mask;
            return mask;
        }
    }

    int Intern(GrammarState state)
    {
        if (_ids.TryGetValue(state, out var id)) return id;
        id = _states.Count;
        _ids[state] = id;
        _states.Add(state);
        _next.Add(null);
        return id;
    }

    /// <summary>The interned state after byte <paramref name="b"/>, or -1 when the byte is refused.</summary>
    int Next(int s, byte b)
    {
        var row = _next[s] ??= Filled();
        var n = row[b];
        if (n != -2) return n;
        var state = _states[s].Step(b);
        if (state.IsDead) n = -1;
        else n = Intern(state);
        row[b] = n;
        return n;
    }

    static int[] Filled()
    {
        var row = new int[256];
        Array.Fill(row, -2);
        return row;
    }
}
