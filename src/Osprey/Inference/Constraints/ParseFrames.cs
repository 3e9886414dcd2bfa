namespace Osprey.Inference.Constraints;

// The parse states of the JSON automaton. A state is an immutable stack of frames (records, so equal stacks are
// equal values and serve as cache keys for token masks); each frame is one value being written and its progress.
// A frame's Step adds the stacks that one more byte leads to; a finished child is popped and its parent told
// through AfterChild. Numbers and literals end without a closing byte of their own, so they are "finishable":
// the byte after them is handed to the parent instead (JsonMachine.Step).

/// <summary>One value being written.</summary>
internal abstract record ParseFrame
{
    /// <summary>Adds to <paramref name="output"/> the stacks reached when this frame (the top of <paramref name="self"/>) reads <paramref name="b"/>.</summary>
    public abstract void Step(ParseStack self, byte b, List<ParseStack> output);

    /// <summary>True when the value may end here without a closing byte of its own.</summary>
    public virtual bool Finishable => false;

    /// <summary>This frame once the child value it started is complete.</summary>
    public virtual ParseFrame AfterChild() => throw new InvalidOperationException($"{GetType().Name} has no child values.");

    /// <summary>
    /// Whitespace bytes this frame has read in a row where it reads whitespace between tokens (its <c>Ws</c>, at most
    /// <see cref="JsonMachine.MaxWhitespace"/>), 0 elsewhere. Such a frame counts a whitespace byte and resets the count
    /// (or is popped) on any other byte, so the run read so far decides only how long a token's leading whitespace may be.
    /// </summary>
    public virtual int SpaceRun => 0;

    /// <summary>This frame with <see cref="SpaceRun"/> 0 (what it was before the run).</summary>
    public virtual ParseFrame WithoutSpaceRun() => this;
}

/// <summary>A stack of frames, top first.</summary>
internal sealed record ParseStack(ParseFrame Top, ParseStack? Below)
{
    /// <summary>The same stack with its top frame replaced.</summary>
    public ParseStack WithTop(ParseFrame top) => new(top, Below);

    /// <summary>The stack below this frame, told that this frame's value is complete.</summary>
    public ParseStack Pop() => Below!.WithTop(Below.Top.AfterChild());
}

/// <summary>
/// The whole output: the fixed <see cref="RootText.Prefix"/>, one value, the fixed <see cref="RootText.Suffix"/>,
/// then nothing (no trailing whitespace, so the end is decided at once). <see cref="At"/> counts the bytes of the
/// prefix written before the value (<see cref="Done"/> false) or of the suffix after it (<see cref="Done"/> true).
/// </summary>
internal sealed record RootFrame(RootText Text, bool Done, int Ws, int At) : ParseFrame
{
    /// <summary>True once the value and the whole suffix are written.</summary>
    public bool Complete => Done && At == Text.Suffix.Length;

    public override void Step(ParseStack self, byte b, List<ParseStack> output)
    {
        if (Done)
        {
            if (At < Text.Suffix.Length && Text.Suffix[At] == b) output.Add(self.WithTop(this with { At = At + 1 }));
            return;
        }
        if (At < Text.Prefix.Length)
        {
            if (Text.Prefix[At] == b) output.Add(self.WithTop(this with { At = At + 1 }));
            return;
        }
        if (JsonMachine.IsWhitespace(b))
        {
            if (Ws < JsonMachine.MaxWhitespace) output.Add(self.WithTop(this with { Ws = Ws + 1 }));
            return;
        }
        JsonMachine.StartValue(Text.Node, self.WithTop(this with { Done = true, Ws = 0, At = 0 }), b, output);
    }

    public override ParseFrame AfterChild() => this;

    public override int SpaceRun => !Done && At >= Text.Prefix.Length ? Ws : 0;

    public override ParseFrame WithoutSpaceRun() => this with { Ws = 0 };
}

/// <summary>
/// What a whole output is: <see cref="Prefix"/>, a value of <see cref="Node"/>, <see cref="Suffix"/> (fixed texts as
/// UTF-8 bytes, one char per byte). A class compared by reference, as schema nodes are.
/// </summary>
internal sealed class RootText(SchemaNode node, string prefix, string suffix)
{
    public SchemaNode Node { get; } = node;
    public string Prefix { get; } = prefix;
    public string Suffix { get; } = suffix;
}

internal enum ObjectPhase { Open, Key, AfterKey, BeforeValue, InValue, AfterValue, Comma }

/// <summary>
/// An object. <see cref="Seen"/> holds the keys written so far ("\0a\0b\0"), <see cref="Key"/> the key being written
/// (its bytes as written), <see cref="Value"/> the schema of the value that follows it.
/// </summary>
internal sealed record ObjectFrame(ObjectNode Node, ObjectPhase Phase, string Seen, string Key, SchemaNode? Value, int Ws, byte Esc, bool Projected = false, bool Others = false) : ParseFrame
{
    public static ObjectFrame Open(ObjectNode node) => new(node, ObjectPhase.Open, "\0", "", null, 0, 0);

    /// <summary>
    /// In a projected frame, the key being written when it is neither a prefix of a declared name nor escaped: an
    /// additional key whose text no longer matters to the schema (only to the duplicate check, left to run time).
    /// Never a real key: keys are stored one char per byte, and this char is above 255.
    /// </summary>
    public const string OtherKey = "\uFFFF";

    // An additional key in a projected frame keeps, after OtherKey's char, the UTF-8 state of its bytes
    // (KeyStep): whether the text is valid so far, mid-character, or had an escape. With it, and with Others (an
    // additional key was written before, so a duplicate is possible), closing such a key is decided by the mask
    // key in the common case (the first additional key, valid UTF-8): before, every token that closes a key was a
    // candidate, stepped through the real state at each step, and with the real key long (a model writing one
    // key for hundreds of tokens) each check cost O(key length): 240 candidates x 32 rows made a step 100+ ms.
    static readonly string[] s_otherKeys = [.. Enumerable.Range(0, 64).Select(i => i == 0 ? OtherKey : OtherKey + (char)i)];

    const int Utf8Invalid = 31, EscapedBit = 32;

    static bool IsOther(string key) => key.Length > 0 && key[0] == OtherKey[0];

    static int KeyState(string otherKey) => otherKey.Length == 1 ? 0 : otherKey[1];

    /// <summary>
    /// The state of an additional key's text after byte <paramref name="b"/>: UTF-8 well-formedness (0 at a character
    /// boundary, a pending sequence, or ill-formed for good) and whether a \u escape was begun (<paramref name="unicode"/>:
    /// it may be a lone surrogate, which only the real key's text can tell).
    /// </summary>
    static int KeyStep(int state, byte b, bool unicode) => Utf8Next(state & 31, b) | (state & EscapedBit) | (unicode ? EscapedBit : 0);

    /// <summary>RFC 3629's well-formed sequences, one byte at a time: pending states are remaining bytes * 8 + the next byte's range.</summary>
    static int Utf8Next(int u, byte b)
    {
        if (u == Utf8Invalid) return u;
        if (u != 0)
        {
            var (lo, hi) = (u & 7) switch { 1 => (0xA0, 0xBF), 2 => (0x80, 0x9F), 3 => (0x90, 0xBF), 4 => (0x80, 0x8F), _ => (0x80, 0xBF) };
            if (b < lo || b > hi) return Utf8Invalid;
            return ((u >> 3) - 1) << 3;
        }
        return b switch
        {
            < 0x80 => 0,
            >= 0xC2 and <= 0xDF => 1 << 3,
            0xE0 => 2 << 3 | 1,
            0xED => 2 << 3 | 2,
            >= 0xE1 and <= 0xEF => 2 << 3,
            0xF0 => 3 << 3 | 3,
            >= 0xF1 and <= 0xF3 => 3 << 3,
            0xF4 => 3 << 3 | 4,
            _ => Utf8Invalid,
        };
    }

    /// <summary>True when every declared name is written as itself (ASCII, unescaped): then a key that is no prefix of a written name is no declared name.</summary>
    bool PlainNames => Node.WrittenNames.All(w => w.Key == w.Value) && Node.Required.All(Node.WrittenNames.Values.Contains);

    /// <summary>Whether a closed object's mask key forgets the names written (<see cref="Lexical"/>): on unless <c>OSPREY_GRAMMAR_FORGET=0</c>.</summary>
    internal static bool ForgetClosedNames { get; set; } = Environment.GetEnvironmentVariable("OSPREY_GRAMMAR_FORGET") != "0";

    /// <summary>
    /// This frame as a mask key (<see cref="GrammarState.Lexical"/>): for an open object, the keys written are
    /// forgotten except the declared and required ones (which decide values and the end), and an additional key's
    /// text becomes <see cref="OtherKey"/>; whatever then depends on the forgotten part marks the step
    /// <see cref="JsonMachine.Unsure"/>. A closed object forgets which of its names were written (<see cref="Forgotten"/>).
    /// </summary>
    public ObjectFrame Lexical()
    {
        if (Projected) return this;
        // A closed object forgets which of its names were written (Others: some were): every place in it then shares one
        // key whatever was written before, in whatever order (a random-weight model reached the five-name schema's
        // 32 subsets in every order, 149 walks in a measured round), and what depends on the forgotten names (a name
        // closed again, a comma when all may be written, the closing brace when some are required) is left to the
        // real state as a candidate.
        // OSPREY_GRAMMAR_FORGET=0 keeps the names (sorted) instead, for comparison.
        if (Node.Additional is null)
            return !ForgetClosedNames ? (Seen.Length > 1 && Node.SortableNames ? this with { Seen = Sorted(Seen.Split('\0', StringSplitOptions.RemoveEmptyEntries)) } : this)
                : Seen.Length > 1 ? this with { Seen = "\0", Projected = true, Others = true } : this with { Projected = true };
        var kept = new List<string>();
        var others = false;
        if (Seen.Length > 1)
            foreach (var name in Seen.Split('\0', StringSplitOptions.RemoveEmptyEntries))
                if (Node.Properties.ContainsKey(name) || Node.Required.Contains(name)) kept.Add(name);
                else others = true;
        var seen = Node.SortableNames ? Sorted([.. kept]) : "\0" + string.Concat(kept.Select(k => k + "\0"));
        return this with { Seen = seen, Key = Phase == ObjectPhase.Key ? LexicalKey(Key) : Key, Projected = true, Others = others };
    }

    /// <summary>
    /// Declared names in ordinal order, as <see cref="Seen"/> holds them: only which were written matters
    /// (<see cref="Has"/>), so a key keeps no order of writing (in that order, the names of a 6-property object
    /// made up to 1,956 keys for one place instead of 64; random-weight rows write them in every order).
    /// </summary>
    static string Sorted(string[] names)
    {
        Array.Sort(names, StringComparer.Ordinal);
        return "\0" + string.Concat(names.Select(n => n + "\0"));
    }

    string LexicalKey(string key)
    {
        if (IsOther(key) || Node.WrittenNames.Keys.Any(w => w.StartsWith(key, StringComparison.Ordinal))) return key;
        // A key with an escape keeps its text where an escape could spell a declared or required name. Where there
        // are none (json_object, a free map) it becomes an additional key marked escaped, whose close is left to the
        // real state: kept as text, each trie path below it was its own state (a walk of ~1 s that filled the
        // tables), and a random-weight model writes backslashes in its keys all the time.
        var escaped = key.Contains('\\');
        if (escaped && (Node.Properties.Count > 0 || Node.Required.Count > 0)) return key;
        var state = escaped ? EscapedBit : 0;
        foreach (var c in key) state = KeyStep(state, (byte)c, false);
        return s_otherKeys[state];
    }

    bool Has(string name) => Seen.Contains("\0" + name + "\0", StringComparison.Ordinal);

    /// <summary>A projected closed object that forgot names written before: what depends on them is unsure.</summary>
    bool Forgotten => Projected && Others && Node.Additional is null;

    bool RequiredMet => Forgotten && Node.Required.Count > 0 ? Unsure(true) : Node.Required.All(Has);

    bool CanAddKey => Node.Additional is not null || (Forgotten ? Unsure(true) : Node.Properties.Keys.Any(k => !Has(k)));

    /// <summary>Marks the step <see cref="JsonMachine.Unsure"/> when <paramref name="unsure"/>; returns it.</summary>
    static bool Unsure(bool unsure)
    {
        if (unsure) JsonMachine.Unsure = true;
        return unsure;
    }

    public override void Step(ParseStack self, byte b, List<ParseStack> output)
    {
        var ws = JsonMachine.IsWhitespace(b);
        switch (Phase)
        {
            case ObjectPhase.Open or ObjectPhase.Comma:
                if (ws) Space(self, output);
                else if (b == '"' && CanAddKey) output.Add(self.WithTop(this with { Phase = ObjectPhase.Key, Key = "", Esc = 0, Ws = 0 }));
                else if (b == '}' && Phase == ObjectPhase.Open && RequiredMet) output.Add(self.Pop());
                break;
            case ObjectPhase.Key:
                StepKey(self, b, output);
                break;
            case ObjectPhase.AfterKey:
                if (ws) Space(self, output);
                else if (b == ':') output.Add(self.WithTop(this with { Phase = ObjectPhase.BeforeValue, Ws = 0 }));
                break;
            case ObjectPhase.BeforeValue:
                if (ws) Space(self, output);
                else JsonMachine.StartValue(Value!, self.WithTop(this with { Phase = ObjectPhase.InValue, Ws = 0 }), b, output);
                break;
            case ObjectPhase.AfterValue:
                if (ws) Space(self, output);
                else if (b == ',' && CanAddKey) output.Add(self.WithTop(this with { Phase = ObjectPhase.Comma, Ws = 0 }));
                else if (b == '}' && RequiredMet) output.Add(self.Pop());
                break;
        }
    }

    public override int SpaceRun => Phase is ObjectPhase.Key or ObjectPhase.InValue ? 0 : Ws;

    public override ParseFrame WithoutSpaceRun() => this with { Ws = 0 };

    void Space(ParseStack self, List<ParseStack> output)
    {
        if (Ws < JsonMachine.MaxWhitespace) output.Add(self.WithTop(this with { Ws = Ws + 1 }));
    }

    void StepKey(ParseStack self, byte b, List<ParseStack> output)
    {
        if (Node.Additional is null)
        {
            // A closed object: the key is one of the property names not yet written, spelled as JsonText writes it.
            if (b == '"' && Node.WrittenNames.TryGetValue(Key, out var done) && (!Has(done) || Forgotten))
            {
                Unsure(Forgotten); // the name may have been written: the real state decides
                output.Add(self.WithTop(Named(done)));
                return;
            }
            var next = Key + (char)b;
            foreach (var (written, name) in Node.WrittenNames)
                if ((!Has(name) || Forgotten) && written.StartsWith(next, StringComparison.Ordinal))
                {
                    Unsure(Forgotten); // with names forgotten, a prefix only of names already written dies in the real state
                    output.Add(self.WithTop(this with { Key = next }));
                    return;
                }
            return;
        }
        var kind = JsonMachine.StringByte(Esc, b, out var esc);
        if (kind == JsonMachine.Invalid) return;
        if (kind == JsonMachine.Close)
        {
            if (Projected && IsOther(Key))
            {
                // The real key's text is refused at its close unless it is well-formed UTF-8; when it is, and no
                // additional key was written before, and no escape could spell a declared name, the close is sure.
                var state = KeyState(Key);
                if ((state & 31) != 0) return;
                if (Others || (state & EscapedBit) != 0 || !PlainNames) JsonMachine.Unsure = true;
                output.Add(self.WithTop(this with { Phase = ObjectPhase.AfterKey, Key = "", Esc = 0, Ws = 0, Value = Node.Additional, Others = true }));
                return;
            }
            if (Projected && JsonText.Unescape(Key) is { } other && !Node.Properties.ContainsKey(other) && !Node.Required.Contains(other))
            {
                // An additional key: its value is Additional whatever the name, but whether the name was written
                // before is in the part of Seen a projected frame forgets, so the step is left to run time.
                JsonMachine.Unsure = true;
                output.Add(self.WithTop(this with { Phase = ObjectPhase.AfterKey, Key = "", Esc = 0, Ws = 0, Value = Node.Additional, Others = true }));
                return;
            }
            if (JsonText.Unescape(Key) is { } name && !Has(name)) output.Add(self.WithTop(Named(name)));
            return;
        }
        var key = !Projected ? Key + (char)b : IsOther(Key) ? s_otherKeys[KeyStep(KeyState(Key), b, esc == 14)] : LexicalKey(Key + (char)b);
        output.Add(self.WithTop(this with { Key = key, Esc = esc }));
    }

    /// <summary>The frame right after the key <paramref name="name"/> closed (its duplicate check passed).</summary>
    internal ObjectFrame AfterKey(string name) => Named(name);

    /// <summary>Whether <paramref name="prefix"/> + <paramref name="suffix"/> is a key written before (<see cref="Has"/> without making the name).</summary>
    internal bool HasJoined(string prefix, string suffix)
    {
        var length = prefix.Length + suffix.Length;
        var seen = Seen.AsSpan();
        for (var start = 1; start < seen.Length;)
        {
            var end = seen[start..].IndexOf('\0');
            if (end < 0) break;
            var name = seen.Slice(start, end);
            if (name.Length == length && name.StartsWith(prefix, StringComparison.Ordinal) && name[prefix.Length..].SequenceEqual(suffix)) return true;
            start += end + 1;
        }
        return false;
    }

    ObjectFrame Named(string name) => this with
    {
        Phase = ObjectPhase.AfterKey, Key = "", Esc = 0, Ws = 0, Seen = Seen + name + "\0",
        Value = Node.Properties.TryGetValue(name, out var node) ? node : Node.Additional,
    };

    public override ParseFrame AfterChild() => this with { Phase = ObjectPhase.AfterValue, Value = null, Ws = 0 };
}

internal enum ArrayPhase { Open, InValue, AfterValue, Comma }

/// <summary>
/// An array with <see cref="Count"/> items begun so far; without a maxItems the count stops at minItems (all that
/// matters then), so the states of a long array repeat and their masks are cache hits.
/// </summary>
internal sealed record ArrayFrame(ArrayNode Node, ArrayPhase Phase, int Count, int Ws, int Budget = 0) : ParseFrame
{
    /// <summary>Items a mask key's frame (<see cref="Lexical"/>) may still begin before it no longer knows whether maxItems is reached.</summary>
    public const int KeyBudget = 4;

    /// <summary>
    /// This frame as a mask key: a count well between minItems and maxItems becomes -1 ("in between"), so the
    /// items of a long bounded array share masks; the next <see cref="KeyBudget"/> items cannot change what is
    /// allowed, and a step past that is marked <see cref="JsonMachine.Unsure"/>.
    /// </summary>
    public ArrayFrame Lexical() =>
        Node.MaxItems is { } max && Count > Node.MinItems && Count < max - KeyBudget ? this with { Count = -1, Budget = KeyBudget } : this;

    int NextCount
    {
        get
        {
            if (Count < 0)
            {
                if (Budget == 0) JsonMachine.Unsure = true;
                return -1;
            }
            return Node.MaxItems is null ? Math.Min(Count + 1, Node.MinItems) : Count + 1;
        }
    }

    int NextBudget => Count < 0 ? Math.Max(Budget - 1, 0) : Budget;

    public override void Step(ParseStack self, byte b, List<ParseStack> output)
    {
        var ws = JsonMachine.IsWhitespace(b);
        if (Phase == ArrayPhase.InValue) return;
        if (ws)
        {
            if (Ws < JsonMachine.MaxWhitespace) output.Add(self.WithTop(this with { Ws = Ws + 1 }));
            return;
        }
        var room = Count < 0 || Node.MaxItems is not { } max || Count < max;
        switch (Phase)
        {
            case ArrayPhase.Open:
                if (b == ']' && Node.MinItems == 0) output.Add(self.Pop());
                else if (room) JsonMachine.StartValue(Node.Items, self.WithTop(this with { Phase = ArrayPhase.InValue, Count = NextCount, Budget = NextBudget, Ws = 0 }), b, output);
                break;
            case ArrayPhase.AfterValue:
                if (b == ',' && room) output.Add(self.WithTop(this with { Phase = ArrayPhase.Comma, Ws = 0 }));
                else if (b == ']' && (Count < 0 || Count >= Node.MinItems)) output.Add(self.Pop());
                break;
            case ArrayPhase.Comma:
                JsonMachine.StartValue(Node.Items, self.WithTop(this with { Phase = ArrayPhase.InValue, Count = NextCount, Budget = NextBudget, Ws = 0 }), b, output);
                break;
        }
    }

    public override ParseFrame AfterChild() => this with { Phase = ArrayPhase.AfterValue, Ws = 0 };

    public override int SpaceRun => Phase == ArrayPhase.InValue ? 0 : Ws;

    public override ParseFrame WithoutSpaceRun() => this with { Ws = 0 };
}

/// <summary>A string after its opening quote: <see cref="Length"/> code points so far, <see cref="Esc"/> the escape state.</summary>
internal sealed record StringFrame(StringNode Node, int Length, byte Esc, int Budget = 0) : ParseFrame
{
    /// <summary>
    /// This frame as a mask key, for a vocabulary whose tokens add at most <paramref name="budget"/> code points to
    /// a string. With more room than that left (a length at or past minLength and more than <paramref name="budget"/>
    /// below maxLength) the length becomes -1 ("in between"): no token can reach maxLength, so all those lengths
    /// share one key; a step past the budget is marked <see cref="JsonMachine.Unsure"/> (before, the budget was a
    /// fixed 16, and each step in a long string checked Qwen3's ~690 longer tokens against the real state, about
    /// 6 ms a row). Otherwise the frame becomes a fresh string (length 0) of a shared node
    /// (<see cref="StringNode.Shared"/>) with the bounds that are left: a string of n code points between minLength
    /// a and maxLength b accepts exactly what an empty one between max(a - n, 0) and b - n does, so strings of
    /// every schema with the same room left share one key (and the whole-vocabulary walk it costs). A -1 frame
    /// never reads its node, so those share one too.
    /// </summary>
    public StringFrame Lexical(int budget)
    {
        if (Length < 0) return this;
        var min = Node.MinLength;
        if (Node.MaxLength is not { } max)
            return this with { Node = StringNode.Shared(Math.Max(min - Length, 0), null), Length = 0 };
        if (Length >= min && Length < max - budget) return this with { Node = StringNode.Shared(0, null), Length = -1, Budget = budget };
        return this with { Node = StringNode.Shared(Math.Max(min - Length, 0), max - Length), Length = 0 };
    }

    public override void Step(ParseStack self, byte b, List<ParseStack> output)
    {
        var kind = JsonMachine.StringByte(Esc, b, out var esc, Length >= 0 && Node.MaxLength is { } limit && Length >= limit);
        switch (kind)
        {
            case JsonMachine.Close:
                if (Length < 0 || Length >= Node.MinLength) output.Add(self.Pop());
                break;
            case JsonMachine.NewChar:
                if (Length < 0)
                {
                    if (Budget == 0) JsonMachine.Unsure = true;
                    output.Add(self.WithTop(this with { Budget = Math.Max(Budget - 1, 0), Esc = esc }));
                }
                // Without a maximum the count stops at the minimum, so a long free string stays one state (one cached mask).
                else if (Node.MaxLength is { } max) { if (Length < max) output.Add(self.WithTop(this with { Length = Length + 1, Esc = esc })); }
                else output.Add(self.WithTop(this with { Length = Math.Min(Length + 1, Node.MinLength), Esc = esc }));
                break;
            case JsonMachine.SameChar:
                output.Add(self.WithTop(this with { Esc = esc }));
                break;
        }
    }
}

internal enum NumberPhase { Minus, Zero, Int, Dot, Frac, Exp, ExpSign, ExpDigits }

/// <summary>
/// A number being written (RFC 8259's grammar), <see cref="Digits"/> digits into its current part. Integers are
/// written without point or exponent (what every validator and draft calls an integer). Parts are bounded
/// (<see cref="JsonMachine.MaxIntegerDigits"/>, <see cref="JsonMachine.MaxFractionDigits"/>,
/// <see cref="JsonMachine.MaxExponentDigits"/>) so a model cannot spend its whole budget on one number.
/// </summary>
internal sealed record NumberFrame(NumberNode Node, NumberPhase Phase, int Digits) : ParseFrame
{
    public override bool Finishable => Phase is NumberPhase.Zero or NumberPhase.Int or NumberPhase.Frac or NumberPhase.ExpDigits;

    public static NumberPhase? First(byte b) => b switch
    {
        (byte)'-' => NumberPhase.Minus,
        (byte)'0' => NumberPhase.Zero,
        >= (byte)'1' and <= (byte)'9' => NumberPhase.Int,
        _ => null,
    };

    public override void Step(ParseStack self, byte b, List<ParseStack> output)
    {
        var digit = b is >= (byte)'0' and <= (byte)'9';
        var real = !Node.Integer;
        var exp = real && b is (byte)'e' or (byte)'E';
        (NumberPhase, int)? next = Phase switch
        {
            NumberPhase.Minus => b == '0' ? (NumberPhase.Zero, 1) : digit ? (NumberPhase.Int, 1) : null,
            NumberPhase.Zero => real && b == '.' ? (NumberPhase.Dot, 0) : exp ? (NumberPhase.Exp, 0) : null,
            NumberPhase.Int => digit && Digits < JsonMachine.MaxIntegerDigits ? (NumberPhase.Int, Digits + 1)
                : real && b == '.' ? (NumberPhase.Dot, 0) : exp ? (NumberPhase.Exp, 0) : null,
            NumberPhase.Dot => digit ? (NumberPhase.Frac, 1) : null,
            NumberPhase.Frac => digit && Digits < JsonMachine.MaxFractionDigits ? (NumberPhase.Frac, Digits + 1) : exp ? (NumberPhase.Exp, 0) : null,
            NumberPhase.Exp => b is (byte)'+' or (byte)'-' ? (NumberPhase.ExpSign, 0) : digit ? (NumberPhase.ExpDigits, 1) : null,
            NumberPhase.ExpSign => digit ? (NumberPhase.ExpDigits, 1) : null,
            NumberPhase.ExpDigits => digit && Digits < JsonMachine.MaxExponentDigits ? (NumberPhase.ExpDigits, Digits + 1) : null,
            _ => null,
        };
        if (next is var (phase, digits)) output.Add(self.WithTop(new NumberFrame(Node, phase, digits)));
    }
}

/// <summary>One of fixed texts, <see cref="Prefix"/> written so far.</summary>
internal sealed record LiteralFrame(LiteralNode Node, string Prefix) : ParseFrame
{
    public override bool Finishable => Node.Texts.Contains(Prefix);

    public override void Step(ParseStack self, byte b, List<ParseStack> output)
    {
        var next = Prefix + (char)b;
        if (Node.Texts.Any(t => t.StartsWith(next, StringComparison.Ordinal))) output.Add(self.WithTop(this with { Prefix = next }));
    }
}

/// <summary>
/// Stands for the frames below a mask key's top frames (<see cref="GrammarState.Lexical"/>): a finished value may
/// pop into it, but any byte it is asked to read depends on what it hides, so it accepts every byte and marks the
/// step <see cref="JsonMachine.Unsure"/> (the tokens that get this far are checked against the real state).
/// </summary>
internal sealed record ContextFrame : ParseFrame
{
    public static readonly ParseStack Stack = new(new ContextFrame(), null);

    public override void Step(ParseStack self, byte b, List<ParseStack> output)
    {
        JsonMachine.Unsure = true;
        output.Add(self);
    }

    public override ParseFrame AfterChild() => this;
}
