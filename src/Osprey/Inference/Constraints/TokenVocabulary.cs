using System.Runtime.CompilerServices;
using Osprey.Tokenization;

namespace Osprey.Inference.Constraints;

/// <summary>
/// What constrained decoding precomputes once per tokenizer: each token's output bytes, a trie over them, the
/// automaton's lexical states (<see cref="GrammarState.Lexical"/>) interned to numbers with a byte transition
/// table, and a cache of allowed-token masks per lexical state. A mask walks the trie once, stepping the
/// automaton once per trie node (not once per token), and a subtree is skipped as soon as its prefix is refused.
/// Lexical states are few per grammar, so after the first steps of the first requests every mask is a cache hit
/// plus a check of a few candidate tokens against the real state.
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
    // Keyed by the lexical state itself, not its interned number, so the masks outlive a restart of the transition
    // tables (before, a full state table cleared every mask too, and 32 rows then re-walked theirs each step).
    readonly Dictionary<GrammarState, LexicalMask> _masks = [];

    /// <summary>Walks of the trie so far (cache misses), for benchmarks.</summary>
    public int Walks { get; private set; }

    /// <summary>Times the tables were full and started again, for benchmarks.</summary>
    public int Clears { get; private set; }

    /// <summary>Candidate tokens stepped through a real parse state so far (the per-step work after warm-up), for benchmarks and tests.</summary>
    public long Checks => Interlocked.Read(ref _checks);

    long _checks;

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
    /// The tokens allowed after <paramref name="state"/>: those whose bytes keep the output a prefix of a valid
    /// value. End-of-sequence is the caller's to add (when the state can end). The mask comes from the state's
    /// lexical key (<see cref="GrammarState.Lexical"/>), computed once by a walk of the trie and then shared; only
    /// the key's few candidate tokens (those whose bytes reach past what the key knows) are stepped through the
    /// real state, and the ones it refuses are listed in <see cref="TokenMask.Refused"/>.
    /// </summary>
    public TokenMask Allowed(GrammarState state)
    {
        var key = state.Lexical(Depth);
        LexicalMask mask;
        lock (_lock)
        {
            if (!_masks.TryGetValue(key, out mask!))
            {
                if (_states.Count >= MaxStates)
                {
                    // Start the transition tables again between walks (never during one, whose numbers would go stale).
                    Clears++;
                    _ids.Clear();
                    _states.Clear();
                    _next.Clear();
                }
                Walks++;
                mask = Walk(Intern(key));
                if (_masks.Count >= MaxMasks)
                {
                    Clears++;
                    _masks.Clear();
                }
                _masks[key] = mask;
            }
        }
        if (mask.Candidates.Length == 0) return mask.Whole;
        Interlocked.Add(ref _checks, mask.Candidates.Length);
        List<int>? refused = null;
        foreach (var id in mask.Candidates)
            if (state.Step(_bytes[id]).IsDead) (refused ??= []).Add(id);
        return refused is null ? mask.Whole : new TokenMask(mask.Bits, mask.Count, [.. refused]);
    }

    /// <summary>
    /// Frames of the parse stack a mask key keeps: enough that a token closing two values and writing the byte
    /// after them (<c>"},</c>) is decided by the key, few enough that keys repeat across a document.
    /// </summary>
    const int Depth = 3;

    /// <summary>A lexical state's tokens: all that may follow it, and those among them the real state must confirm.</summary>
    sealed record LexicalMask(ulong[] Bits, int Count, int[] Candidates)
    {
        public TokenMask Whole { get; } = new(Bits, Count, []);
    }

    /// <summary>
    /// One walk of the trie from interned state <paramref name="start"/>, stepping the automaton once per trie node
    /// and skipping a subtree as soon as its prefix is refused. A path that went through an unsure step (one that
    /// depends on what the key forgot) makes the tokens below it candidates.
    /// </summary>
    LexicalMask Walk(int start)
    {
        var bits = new ulong[(Size + 63) / 64];
        var count = 0;
        var candidates = new List<int>();
        var stack = new Stack<(int Node, int State, bool Unsure)>();
        stack.Push((0, start, false));
        while (stack.Count > 0)
        {
            var (node, s, unsure) = stack.Pop();
            for (var e = _edgeStart[node]; e < _edgeStart[node + 1]; e++)
            {
                var next = Next(s, _edgeLabel[e]);
                if (next < 0) continue;
                var sure = (next & UnsureBit) == 0 && !unsure;
                next &= ~UnsureBit;
                var target = _edgeTarget[e];
                for (var t = _endStart[target]; t < _endStart[target + 1]; t++)
                {
                    var id = _ends[t];
                    bits[id >> 6] |= 1UL << (id & 63);
                    count++;
                    if (!sure) candidates.Add(id);
                }
                if (_edgeStart[target + 1] > _edgeStart[target]) stack.Push((target, next, !sure));
            }
        }
        return new LexicalMask(bits, count, [.. candidates]);
    }

    /// <summary>Marks a transition whose step was unsure (<see cref="JsonMachine.Unsure"/>) in the byte table.</summary>
    const int UnsureBit = 1 << 30;

    int Intern(GrammarState state)
    {
        if (_ids.TryGetValue(state, out var id)) return id;
        id = _states.Count;
        _ids[state] = id;
        _states.Add(state);
        _next.Add(null);
        return id;
    }

    /// <summary>The interned state after byte <paramref name="b"/> (with <see cref="UnsureBit"/> when that step was unsure), or -1 when the byte is refused.</summary>
    int Next(int s, byte b)
    {
        var row = _next[s] ??= Filled();
        var n = row[b];
        if (n != -2) return n;
        JsonMachine.Unsure = false;
        JsonMachine.Projecting = true;
        var state = _states[s].Step(b);
        JsonMachine.Projecting = false;
        if (state.IsDead) n = -1;
        else n = Intern(state) | (JsonMachine.Unsure ? UnsureBit : 0);
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
