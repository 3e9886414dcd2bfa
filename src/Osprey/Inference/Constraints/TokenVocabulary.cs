using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Osprey.Tokenization;

namespace Osprey.Inference.Constraints;

/// <summary>
/// What constrained decoding precomputes once per tokenizer: each token's output bytes, a trie over them, and a
/// cache of allowed-token masks per lexical state (<see cref="GrammarState.Lexical"/>). A mask walks the trie
/// once, stepping the automaton once per trie node (not once per token) through a byte transition table of
/// interned states, and a subtree is skipped as soon as its prefix is refused. Lexical states are few per
/// grammar, so after the first steps of the first requests every mask is a cache hit plus a check of a few
/// candidate tokens against the real state. Inside a string, where nearly the whole vocabulary is allowed and a
/// walk is the most expensive, the walk is shared by every place the string can stand (<see cref="GrammarState.StringBase"/>)
/// and only the tokens that leave the string are stepped for the real place (<see cref="Compose"/>).
/// </summary>
/// <remarks>
/// Thread safety (many engines and a batch's rows, in parallel, share one vocabulary):
/// the token bytes and the trie are written only in the constructor and read-only after it.
/// The transition tables (interned states and their byte rows) are per thread (<see cref="_tables"/>), never
/// shared, so walks on different threads run at once with no lock and no shared writes; a thread starts its
/// tables again between its own walks when they are full.
/// The mask cache is a <see cref="ConcurrentDictionary{TKey,TValue}"/> of entries each holding a
/// <see cref="Lazy{T}"/> in ExecutionAndPublication mode: the first caller of a key walks, later callers of the
/// same key wait for that walk (no double work), callers of other keys are not held. A computed
/// <see cref="LexicalMask"/> is never written again, and Lazy publishes it with the needed barrier.
/// Eviction (past the bound) runs under <see cref="_evictLock"/>, one thread at a time, and drops the least
/// recently used quarter; last-use stamps are written with Volatile, so a stale stamp only makes the choice
/// approximate. A caller still holding an evicted entry keeps a valid mask (entries are immutable), and a later
/// caller just walks again. Counters are Interlocked. A key's lazily cached hash (<see cref="GrammarState.GetHashCode"/>)
/// is computed by the dictionary before the key is published in it, so no other thread sees it being written.
/// </remarks>
internal sealed class TokenVocabulary
{
    static readonly ConditionalWeakTable<Tokenizer, TokenVocabulary> s_byTokenizer = [];

    /// <summary>The vocabulary of <paramref name="tokenizer"/>, built on first use.</summary>
    public static TokenVocabulary For(Tokenizer tokenizer) => s_byTokenizer.GetValue(tokenizer, t => new TokenVocabulary(t));

    /// <summary>
    /// Most interned automaton states per thread (about 1 KB of transition row each, so at most ~8 MB a thread that
    /// walks) and masks kept (about 19 KB each with a 150k vocabulary, ~78 MB); past these, a thread's tables start
    /// again and the least recently used masks go (bounds on memory, not on correctness).
    /// </summary>
    const int MaxStates = 8192, DefaultMaxMasks = 4096;

    readonly int _maxMasks;
    readonly byte[]?[] _bytes;
    // The trie, flattened: node n's edges are _edgeLabel/_edgeTarget[_edgeStart[n] .. _edgeStart[n + 1]);
    // the tokens ending at node n are _ends[_endStart[n] .. _endStart[n + 1]).
    readonly int[] _edgeStart, _edgeTarget, _endStart, _ends;
    readonly byte[] _edgeLabel;

    readonly ThreadLocal<WalkTables> _tables;
    // Keyed by the lexical state itself, not an interned number, so masks outlive a restart of the transition tables.
    readonly ConcurrentDictionary<GrammarState, MaskEntry> _masks = new();
    readonly Lock _evictLock = new();
    long _clock, _walks, _clears, _checks;

    /// <summary>Walks of the trie so far (cache misses), for benchmarks.</summary>
    public int Walks => (int)Interlocked.Read(ref _walks);

    /// <summary>Times a thread's transition tables were full and started again, or masks were evicted, for benchmarks.</summary>
    public int Clears => (int)Interlocked.Read(ref _clears);

    /// <summary>Candidate tokens stepped through a real parse state so far (the per-step work after warm-up), for benchmarks and tests.</summary>
    public long Checks => Interlocked.Read(ref _checks);

    /// <summary>Masks in the cache now, for tests.</summary>
    public int Cached => _masks.Count;

    /// <summary>
    /// The most code points one token adds inside a string (its bytes less UTF-8 continuation bytes, an upper
    /// bound: an escape is several bytes for one code point), capped so a freak token cannot make every bounded
    /// string exact: strings with more room than this share one mask key (<see cref="StringFrame.Lexical"/>).
    /// </summary>
    readonly int _stringBudget;

    /// <summary>Token ids 0 .. Size - 1 have entries (the tokenizer's vocabulary; a model's padded rows are never allowed).</summary>
    public int Size { get; }

    /// <summary>A vocabulary of its own (not the shared one of <see cref="For"/>), keeping at most <paramref name="maxMasks"/> masks: for tests.</summary>
    internal TokenVocabulary(Tokenizer tokenizer, int maxMasks = DefaultMaxMasks)
    {
        _maxMasks = maxMasks;
        _tables = new(() => new WalkTables());
        Size = tokenizer.VocabSize;
        _bytes = new byte[]?[Size];
        for (var id = 0; id < Size; id++) _bytes[id] = BytesOf(tokenizer, id);
        _stringBudget = Math.Min(_bytes.Max(b => b is null ? 0 : b.Count(x => x is < 0x80 or >= 0xC0)), 256);
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
    /// lexical key (<see cref="GrammarState.Lexical"/>), computed once and then shared; only the key's few
    /// candidate tokens (those whose bytes reach past what the key knows) are stepped through the real state, and
    /// the ones it refuses are listed in <see cref="TokenMask.Refused"/>. Safe to call from many threads at once.
    /// </summary>
    public TokenMask Allowed(GrammarState state)
    {
        var mask = MaskOf(state.Lexical(Depth, _stringBudget));
        if (mask.Candidates.Length == 0) return mask.Whole;
        Interlocked.Add(ref _checks, mask.Candidates.Length);
        List<int>? refused = null;
        var closer = state.KeyCloser();
        foreach (var id in mask.Candidates)
            if (closer?.Dead(_bytes[id]) ?? state.DeadAfter(_bytes[id])) (refused ??= []).Add(id);
        return refused is null ? mask.Whole : new TokenMask(mask.Bits, mask.Count, [.. refused]);
    }

    /// <summary>
    /// Computes now the masks of the string keys that schemas reach most: an empty string with 0 .. budget code
    /// points of room (<see cref="StringFrame.Lexical"/>: every bounded string near its maxLength), the free string
    /// and the "in between" one. Each is a walk of the whole vocabulary (nearly every token can go inside a string;
    /// tens of milliseconds each on a busy CPU) and is shared afterwards by every schema and place, so a request that
    /// reaches one first no longer pays it in the middle of its decode. The serving engine calls this on a
    /// background thread when it starts on a GPU. Then the same for json_object's states along a few small documents.
    /// Returns how many masks it asked for (those already cached included).
    /// </summary>
    public int PrewarmStrings(CancellationToken cancel = default)
    {
        var frames = new List<StringFrame>
        {
            new(StringNode.Shared(0, null), -1, 0, _stringBudget),
            new(StringNode.Shared(0, null), 0, 0),
        };
        for (var room = _stringBudget; room >= 0; room--) frames.Add(new(StringNode.Shared(0, room), 0, 0));
        var done = 0;
        foreach (var frame in frames)
        {
            if (cancel.IsCancellationRequested) return done;
            MaskOf(new GrammarState([new ParseStack(frame, ContextFrame.Stack)]));
            done++;
        }
        // json_object's states: its keys are free text, so the places in a key are whole-vocabulary walks too.
        foreach (var document in s_anyObjectSamples)
        {
            var state = JsonSchemaGrammar.AnyObject.Start();
            foreach (var b in System.Text.Encoding.UTF8.GetBytes(document))
            {
                if (cancel.IsCancellationRequested || state.IsDead) return done;
                Allowed(state);
                done++;
                state = state.Step(b);
            }
        }
        return done;
    }

    /// <summary>Small documents whose every prefix <see cref="PrewarmStrings"/> asks json_object's masks for: first and later keys, nested ones, escapes, each kind of value.</summary>
    static readonly string[] s_anyObjectSamples =
    [
        "{\"name\": \"Ada\", \"age\": 36, \"tags\": [\"x\", 1.5e3, true, null], \"meta\": {\"k\\n\": -2, \"e\": {}}}",
        "{\n  \"id\": 7,\n  \"ok\": false,\n  \"items\": [\n    {\"a\": \"b\"}\n  ]\n}",
    ];

    /// <summary>The most code points one token adds inside a string (the room past which string keys are shared), for tests and benchmarks.</summary>
    internal int StringBudget => _stringBudget;

    /// <summary>The cached mask of lexical state <paramref name="key"/>, computed by this thread or awaited from the one computing it.</summary>
    LexicalMask MaskOf(GrammarState key)
    {
        var now = Interlocked.Increment(ref _clock);
        if (!_masks.TryGetValue(key, out var entry))
        {
            var made = new MaskEntry(new Lazy<LexicalMask>(() => Compute(key), LazyThreadSafetyMode.ExecutionAndPublication));
            entry = _masks.GetOrAdd(key, made);
            if (ReferenceEquals(entry, made) && _masks.Count > _maxMasks) Evict();
        }
        Volatile.Write(ref entry.LastUse, now);
        return entry.Mask.Value;
    }

    /// <summary>Drops the least recently used quarter of the masks (an LRU by stamps: before, reaching the bound dropped them all, and every row walked again).</summary>
    void Evict()
    {
        lock (_evictLock)
        {
            if (_masks.Count <= _maxMasks) return; // another thread just did
            Interlocked.Increment(ref _clears);
            var stamps = _masks.Select(e => (e.Key, Stamp: Volatile.Read(ref e.Value.LastUse))).ToArray();
            Array.Sort(stamps, (a, b) => a.Stamp.CompareTo(b.Stamp));
            foreach (var (key, _) in stamps.AsSpan(0, Math.Max(stamps.Length - _maxMasks * 3 / 4, 1))) _masks.TryRemove(key, out _);
        }
    }

    LexicalMask Compute(GrammarState key)
    {
        // The shared part first: it may walk on this thread, and starting the tables again must come before this
        // key is interned in them.
        // A run of whitespace between tokens: the key before the run, less the tokens whose leading whitespace no
        // longer fits (before, each run length was a walk of its own, and a model that writes whitespace met many).
        if (key.AfterWhitespace() is { } spaced) return ComposeWhitespace(MaskOf(spaced.Base), spaced.Used);
        var baseKey = key.StringBase();
        var shared = baseKey is not null ? MaskOf(baseKey) : null;
        var bounded = shared is null && key.BoundedString(_stringBudget) is { } b ? (Mask: MaskOf(b.Base), b.Room) : (Mask: null, Room: 0);
        var tables = _tables.Value!;
        if (tables.Count >= MaxStates)
        {
            Interlocked.Increment(ref _clears);
            tables.Clear(); // between walks only (never during one, whose numbers would go stale)
        }
        var start = tables.Intern(key);
        if (shared is not null) return Compose(shared, tables, start, tables.Intern(baseKey!), tables.Intern(key.AfterStringClosed()));
        if (bounded.Mask is not null) return ComposeBounded(bounded.Mask, tables, start, bounded.Room);
        Interlocked.Increment(ref _walks);
        return Walk(tables, start);
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

    /// <summary>A cache entry: the mask (computed once) and when it was last asked for (the eviction order).</summary>
    sealed class MaskEntry(Lazy<LexicalMask> mask)
    {
        public readonly Lazy<LexicalMask> Mask = mask;
        public long LastUse;
    }

    /// <summary>
    /// One walk of the trie from interned state <paramref name="start"/>, stepping the automaton once per trie node
    /// and skipping a subtree as soon as its prefix is refused. A path that went through an unsure step (one that
    /// depends on what the key forgot) makes the tokens below it candidates.
    /// </summary>
    LexicalMask Walk(WalkTables tables, int start)
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
                var next = tables.Next(s, _edgeLabel[e]);
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

    /// <summary>
    /// The mask of a key inside a string from the string's shared mask (<see cref="GrammarState.StringBase"/>): what
    /// a walk from <paramref name="start"/> would give, at the cost of stepping the shared mask's candidates only.
    /// Exact because a token that the shared walk decided surely never read a byte below the string (that is what
    /// the <see cref="ContextFrame"/> there marks unsure), and a string's steps do not depend on what is below it:
    /// such a token has the same verdict here. Every other token is a candidate there, and is stepped here byte by
    /// byte as the walk would step its trie path (refused: dropped; unsure on the way: a candidate of this key).
    /// </summary>
    LexicalMask Compose(LexicalMask shared, WalkTables tables, int start, int sharedStart, int afterClose)
    {
        var bits = (ulong[])shared.Bits.Clone();
        var count = shared.Count;
        // Most candidates close the string and go on. The part inside the string is the same at every place, so it is
        // stepped from the shared key (whose transitions every place and room reuse); once the string closes there
        // (the state is the bare context), the rest of the token is stepped from this place's state after the close.
        // Before, every byte was stepped from this key's own states, new for each place and room left, so most
        // transitions were computed afresh (a parse step and an interned state each). A token whose part inside the
        // string meets an unsure step is stepped the old way.
        var context = tables.Intern(ContextState);
        var candidates = new List<int>();
        List<int>? slow = null;
        foreach (var id in shared.Candidates)
        {
            var bytes = _bytes[id]!;
            var s = sharedStart;
            var i = 0;
            var dead = false;
            for (; i < bytes.Length && s != context; i++)
            {
                var next = tables.Next(s, bytes[i]);
                if (next < 0) { dead = true; break; }
                if ((next & UnsureBit) != 0 && (next & ~UnsureBit) != context) { s = -1; break; }
                s = next & ~UnsureBit;
            }
            if (s < 0 && !dead)
            {
                (slow ??= []).Add(id);
                continue;
            }
            var sure = true;
            if (!dead && s == context)
            {
                s = afterClose;
                for (; i < bytes.Length; i++)
                {
                    var next = tables.Next(s, bytes[i]);
                    if (next < 0) { dead = true; break; }
                    if ((next & UnsureBit) != 0) sure = false;
                    s = next & ~UnsureBit;
                }
            }
            if (dead)
            {
                bits[id >> 6] &= ~(1UL << (id & 63));
                count--;
            }
            else if (!sure) candidates.Add(id);
        }
        if (slow is null) return new LexicalMask(bits, count, [.. candidates]);
        var rest = Restep(slow, bits, count, tables, start);
        return new LexicalMask(rest.Bits, rest.Count, [.. candidates, .. rest.Candidates]);
    }

    /// <summary>The bare context (<see cref="ContextFrame"/>): where a shared string key stands once its string has closed.</summary>
    static readonly GrammarState ContextState = new([ContextFrame.Stack]);

    /// <summary>
    /// Steps each of <paramref name="ids"/> from interned state <paramref name="start"/> as a walk steps its trie path:
    /// refused ones are cleared from <paramref name="bits"/>, those that pass an unsure step become the candidates.
    /// </summary>
    LexicalMask Restep(IEnumerable<int> ids, ulong[] bits, int count, WalkTables tables, int start)
    {
        var candidates = new List<int>();
        foreach (var id in ids)
        {
            var s = start;
            var sure = true;
            foreach (var b in _bytes[id]!)
            {
                var next = tables.Next(s, b);
                if (next < 0) { s = -1; break; }
                if ((next & UnsureBit) != 0) sure = false;
                s = next & ~UnsureBit;
            }
            if (s < 0)
            {
                bits[id >> 6] &= ~(1UL << (id & 63));
                count--;
            }
            else if (!sure) candidates.Add(id);
        }
        return new LexicalMask(bits, count, [.. candidates]);
    }

    /// <summary>
    /// The mask of a bounded string near its limit (<see cref="GrammarState.BoundedString"/>: <paramref name="room"/>
    /// code points left) from the "in between" string's shared mask, without a walk of its own (before, each distinct
    /// room left was a walk of the whole vocabulary, 12–23 ms on the 2-core box, and bounded schemas met dozens).
    /// Exact: a token that stays inside the string and has no backslash adds <see cref="StringCodePoints"/> code
    /// points and is accepted by the bounded string exactly when the in-between string accepts it and those fit the
    /// room (each new code point needs room, and nothing else about the bound reads a plain byte). Every other token
    /// (the shared mask's candidates: those leaving the string or running past the budget; tokens that close the
    /// string, whose close depends on minLength and on the room before it; and tokens with a backslash, whose escapes
    /// the bound restricts at the limit) is stepped from <paramref name="start"/> as
    /// <see cref="Compose"/> steps them.
    /// </summary>
    LexicalMask ComposeBounded(LexicalMask between, WalkTables tables, int start, int room)
    {
        var (points, escapes) = StringCodePoints();
        var bits = (ulong[])between.Bits.Clone();
        var count = between.Count;
        var unsure = new HashSet<int>(between.Candidates);
        var recheck = new List<int>(between.Candidates);
        for (var id = 0; id < Size; id++)
        {
            if ((bits[id >> 6] & (1UL << (id & 63))) == 0 || unsure.Contains(id)) continue;
            if (escapes[id] || points[id] < 0) recheck.Add(id); // an escape, or the string's close (minLength, the room before it)
            else if (points[id] > room)
            {
                bits[id >> 6] &= ~(1UL << (id & 63));
                count--;
            }
        }
        return Restep(recheck, bits, count, tables, start);
    }

    /// <summary>
    /// The mask of a key after <paramref name="used"/> whitespace bytes in a row (<see cref="GrammarState.AfterWhitespace"/>)
    /// from <paramref name="before"/>, the mask of the same key before them: the tokens whose leading whitespace is longer
    /// than the <see cref="JsonMachine.MaxWhitespace"/> − <paramref name="used"/> bytes left are dropped, every other
    /// verdict (and candidate) is kept.
    /// </summary>
    LexicalMask ComposeWhitespace(LexicalMask before, int used)
    {
        var left = Math.Max(JsonMachine.MaxWhitespace - used, 0);
        var (order, longer, length) = LeadingWhitespace();
        var bits = (ulong[])before.Bits.Clone();
        var count = before.Count;
        // order lists the tokens with leading whitespace, longest run first; longer[n] of them have more than n bytes.
        foreach (var id in order.AsSpan(0, longer[left]))
        {
            var bit = 1UL << (id & 63);
            if ((bits[id >> 6] & bit) == 0) continue;
            bits[id >> 6] &= ~bit;
            count--;
        }
        return new LexicalMask(bits, count, [.. before.Candidates.Where(id => length[id] <= left)]);
    }

    (int[] Order, int[] Longer, byte[] Length)? _leadingWhitespace;
    readonly Lock _leadingWhitespaceLock = new();

    /// <summary>
    /// Per token, the length of its leading run of JSON whitespace bytes (capped at 255); the tokens with such a run,
    /// longest first; and for n = 0 .. <see cref="JsonMachine.MaxWhitespace"/> how many of them are longer than n.
    /// Computed once per vocabulary.
    /// </summary>
    (int[] Order, int[] Longer, byte[] Length) LeadingWhitespace()
    {
        lock (_leadingWhitespaceLock)
        {
            if (_leadingWhitespace is { } done) return done;
            var length = new byte[Size];
            for (var id = 0; id < Size; id++)
            {
                var n = 0;
                foreach (var b in Bytes(id))
                {
                    if (!JsonMachine.IsWhitespace(b) || n == 255) break;
                    n++;
                }
                length[id] = (byte)n;
            }
            var order = Enumerable.Range(0, Size).Where(id => length[id] > 0).OrderByDescending(id => length[id]).ToArray();
            var longer = new int[JsonMachine.MaxWhitespace + 1];
            for (var n = 0; n <= JsonMachine.MaxWhitespace; n++) longer[n] = order.Count(id => length[id] > n);
            return (_leadingWhitespace = (order, longer, length)).Value;
        }
    }

    (int[] Points, bool[] Escapes)? _stringCodePoints;
    readonly Lock _codePointsLock = new();

    /// <summary>
    /// Per token, the code points it adds inside a string begun outside any escape (JSON Schema's count, as
    /// <see cref="JsonMachine.StringByte"/> counts them; -1 when it closes the string or is invalid there), and whether
    /// it holds a backslash. Computed once per vocabulary.
    /// </summary>
    (int[] Points, bool[] Escapes) StringCodePoints()
    {
        lock (_codePointsLock)
        {
            if (_stringCodePoints is { } done) return done;
            var points = new int[Size];
            var escapes = new bool[Size];
            for (var id = 0; id < Size; id++)
            {
                byte esc = 0;
                var n = 0;
                foreach (var b in _bytes[id] ?? [])
                {
                    if (b == (byte)'\\') escapes[id] = true;
                    var kind = JsonMachine.StringByte(esc, b, out esc);
                    if (kind is JsonMachine.Invalid or JsonMachine.Close) { n = -1; break; }
                    if (kind == JsonMachine.NewChar) n++;
                }
                points[id] = n;
            }
            _stringCodePoints = (points, escapes);
            return (points, escapes);
        }
    }

    /// <summary>Marks a transition whose step was unsure (<see cref="JsonMachine.Unsure"/>) in the byte table.</summary>
    const int UnsureBit = 1 << 30;

    /// <summary>One thread's interned automaton states and their byte transition rows (filled lazily), reused across its walks.</summary>
    sealed class WalkTables
    {
        readonly Dictionary<GrammarState, int> _ids = [];
        readonly List<GrammarState> _states = [];
        readonly List<int[]?> _next = [];

        public int Count => _states.Count;

        public void Clear()
        {
            _ids.Clear();
            _states.Clear();
            _next.Clear();
        }

        public int Intern(GrammarState state)
        {
            if (_ids.TryGetValue(state, out var id)) return id;
            id = _states.Count;
            _ids[state] = id;
            _states.Add(state);
            _next.Add(null);
            return id;
        }

        /// <summary>The interned state after byte <paramref name="b"/> (with <see cref="UnsureBit"/> when that step was unsure), or -1 when the byte is refused.</summary>
        public int Next(int s, byte b)
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
}
