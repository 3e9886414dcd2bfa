namespace Osprey.Inference.Constraints;

/// <summary>
/// Where the automaton stands after some output: the set of parse stacks still possible (usually one; anyOf and
/// type lists can keep several). Equal states allow the same tokens, so a state is the key of the mask cache.
/// </summary>
internal sealed class GrammarState : IEquatable<GrammarState>
{
    readonly ParseStack[] _stacks;
    int? _hash;

    public GrammarState(List<ParseStack> stacks) => _stacks = stacks.Count <= 1 ? [.. stacks] : stacks.Distinct().ToArray();

    /// <summary>True when no output can follow: the bytes so far fit no value the schema allows.</summary>
    public bool IsDead => _stacks.Length == 0;

    /// <summary>True when the value is complete and the output may end.</summary>
    public bool CanEnd => _stacks.Any(JsonMachine.CanEnd);

    /// <summary>
    /// This state as a mask key: each stack cut to its top <paramref name="depth"/> frames (a
    /// <see cref="ContextFrame"/> below them) and open objects' keys forgotten (<see cref="ObjectFrame.Lexical"/>).
    /// The keys are few per grammar, so their masks are computed once and reused across steps and requests.
    /// <paramref name="stringBudget"/>: the most code points one token of the vocabulary adds to a string
    /// (<see cref="StringFrame.Lexical"/>).
    /// </summary>
    public GrammarState Lexical(int depth, int stringBudget)
    {
        var stacks = new List<ParseStack>(_stacks.Length);
        foreach (var s in _stacks) stacks.Add(Project(s, depth, stringBudget));
        return new GrammarState(stacks);
    }

    static ParseStack Project(ParseStack s, int depth, int budget) =>
        depth == 0 ? ContextFrame.Stack : new ParseStack(KeyFrame(s.Top, budget), s.Below is null ? null : Project(s.Below, depth - 1, budget));

    static ParseFrame KeyFrame(ParseFrame f, int budget) => f switch
    {
        ObjectFrame o => o.Lexical(),
        ArrayFrame a => a.Lexical(),
        StringFrame s => s.Lexical(budget),
        _ => f,
    };

    /// <summary>
    /// For a mask key inside a string (one stack, a <see cref="StringFrame"/> on top of real frames), the same string
    /// above a <see cref="ContextFrame"/> only: the key whose mask is a walk of the whole vocabulary shared by every
    /// place that string can be. Null for any other key.
    /// </summary>
    public GrammarState? StringBase() =>
        _stacks is [{ Top: StringFrame top, Below: { Top: not ContextFrame } }] ? new([new ParseStack(top, ContextFrame.Stack)]) : null;

    /// <summary>
    /// For a key with a string on top of real frames (<see cref="StringBase"/> not null), the key right after that
    /// string's closing quote: the frame below told its value is complete.
    /// </summary>
    public GrammarState AfterStringClosed() => new([_stacks[0].Pop()]);

    /// <summary>
    /// For a mask key of a bounded string near its limit, shared by every place (one stack: a fresh
    /// <see cref="StringFrame"/> outside any escape, whose node holds the room left, above a <see cref="ContextFrame"/>;
    /// what <see cref="StringFrame.Lexical"/> and <see cref="StringBase"/> make of it), the "in between" string key
    /// over the same <see cref="ContextFrame"/> (a string far from its bounds, <paramref name="budget"/> code points of
    /// room per token) and the code points of room left. Null for any other key.
    /// </summary>
    public (GrammarState Base, int Room)? BoundedString(int budget) =>
        _stacks is [{ Top: StringFrame { Length: 0, Esc: 0 } top, Below: { Top: ContextFrame } }] && top.Node.MaxLength is int room
            ? (new([new ParseStack(new StringFrame(StringNode.Shared(0, null), -1, 0, budget), ContextFrame.Stack)]), room)
            : null;

    /// <summary>
    /// For a mask key whose every stack's top frame has read the same run of <c>Used</c> &gt; 0 whitespace bytes between
    /// tokens (<see cref="ParseFrame.SpaceRun"/>), the same key before that run and the run's length; null otherwise.
    /// A token is allowed here exactly when the key before the run allows it and its leading whitespace fits in the
    /// <see cref="JsonMachine.MaxWhitespace"/> − Used bytes left: the run's frames read those bytes alike, and the first
    /// other byte leaves each in the same state whatever the run was.
    /// </summary>
    public (GrammarState Base, int Used)? AfterWhitespace()
    {
        if (_stacks.Length == 0) return null;
        var used = _stacks[0].Top.SpaceRun;
        if (used == 0) return null;
        foreach (var s in _stacks)
            if (s.Top.SpaceRun != used) return null;
        return (new GrammarState([.. _stacks.Select(s => s.WithTop(s.Top.WithoutSpaceRun()))]), used);
    }

    /// <summary>The state after one more byte (dead when the byte fits nowhere).</summary>
    public GrammarState Step(byte b)
    {
        // One scratch list per thread (a step never steps another state inside it): masks step states millions of
        // times, and a fresh list each time was a large share of what they allocate.
        var output = t_scratch ??= new List<ParseStack>(4);
        output.Clear();
        foreach (var s in _stacks) JsonMachine.Step(s, b, output);
        var next = output.Count == 0 ? Dead : new GrammarState(output);
        output.Clear();
        return next;
    }

    [ThreadStatic] static List<ParseStack>? t_scratch;

    /// <summary>The state no output can follow (shared: a state never changes).</summary>
    static readonly GrammarState Dead = new([]);

    /// <summary>The state after <paramref name="bytes"/>, stopping early once dead (one state made, not one per byte).</summary>
    public GrammarState Step(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length <= 1) return bytes.Length == 0 ? this : Step(bytes[0]);
        var stacks = StepStacks(bytes);
        var state = stacks.Count == 0 ? Dead : new GrammarState(stacks);
        stacks.Clear();
        return state;
    }

    /// <summary>
    /// Whether <paramref name="bytes"/> leave no output possible: <see cref="Step(ReadOnlySpan{byte})"/>'s
    /// <see cref="IsDead"/> without making the state, which is what a mask's candidate checks ask millions of times.
    /// </summary>
    public bool DeadAfter(ReadOnlySpan<byte> bytes)
    {
        var stacks = StepStacks(bytes);
        var dead = stacks.Count == 0;
        stacks.Clear();
        return dead;
    }

    /// <summary>
    /// The stacks after <paramref name="bytes"/> (empty once dead), stepped byte by byte through two lists of this
    /// thread's with duplicates dropped after each byte as the constructor drops them (first occurrences kept, in
    /// order). The list returned is one of those two: the caller reads it, then clears it.
    /// </summary>
    List<ParseStack> StepStacks(ReadOnlySpan<byte> bytes)
    {
        var current = t_stepA ??= new List<ParseStack>(4);
        var next = t_stepB ??= new List<ParseStack>(4);
        current.Clear();
        current.AddRange(_stacks);
        foreach (var b in bytes)
        {
            if (current.Count == 0) break;
            next.Clear();
            foreach (var s in current) JsonMachine.Step(s, b, next);
            for (var i = next.Count - 1; i > 0; i--)
                for (var j = 0; j < i; j++)
                    if (next[i].Equals(next[j]))
                    {
                        next.RemoveAt(i);
                        break;
                    }
            (current, next) = (next, current);
        }
        next.Clear();
        return current;
    }

    [ThreadStatic] static List<ParseStack>? t_stepA, t_stepB;

    /// <summary>
    /// For a state writing a key of a free-form object (json_object, a map: no declared or required names), one parse
    /// stack, outside any escape and with the key so far well-formed: a checker that decides a key-closing candidate
    /// token without stepping the key's text byte by byte (see <see cref="KeyCloser"/>). Null for any other state.
    /// </summary>
    public KeyCloser? KeyCloser() =>
        _stacks is [{ Top: ObjectFrame { Projected: false, Phase: ObjectPhase.Key, Esc: 0 } frame } stack]
        && frame.Node is { Additional: not null, Properties.Count: 0, Required.Count: 0 }
        && JsonText.Unescape(frame.Key) is { } written
            ? new KeyCloser(stack, frame, written)
            : null;


    public bool Equals(GrammarState? other) =>
        other is not null && GetHashCode() == other.GetHashCode() && _stacks.Length == other._stacks.Length && _stacks.All(other._stacks.Contains);

    public override bool Equals(object? obj) => Equals(obj as GrammarState);

    public override string ToString() => string.Join(" | ", _stacks.Select(s => s.ToString()));

    public override int GetHashCode()
    {
        if (_hash is { } h) return h;
        var sum = 0;
        foreach (var s in _stacks) sum = unchecked(sum + s.GetHashCode()); // order-free: the stacks are a set
        _hash = sum;
        return sum;
    }
}
