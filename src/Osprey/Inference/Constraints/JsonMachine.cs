namespace Osprey.Inference.Constraints;

/// <summary>The byte rules shared by the parse frames, and the step that hands a finished value's next byte to its parent.</summary>
internal static class JsonMachine
{
    /// <summary>
    /// Whitespace bytes allowed in a row between tokens: enough for pretty-printed output, few enough that a model
    /// cannot spend its whole budget on blanks.
    /// </summary>
    public const int MaxWhitespace = 16;

    /// <summary>Most digits of a number's integer part (15: every such integer is exact in a double).</summary>
    public const int MaxIntegerDigits = 15;

    /// <summary>Most digits after a number's point.</summary>
    public const int MaxFractionDigits = 15;

    /// <summary>Most digits of a number's exponent.</summary>
    public const int MaxExponentDigits = 3;

    public const int Invalid = 0, SameChar = 1, NewChar = 2, Close = 3;

    /// <summary>
    /// Set by a step of a projected state (<see cref="GrammarState.Lexical"/>) whose outcome depends on what the
    /// projection forgot; the mask walk reads it after each step and leaves the tokens past such a step to be
    /// checked against the real state. Per thread, as steps run on the caller's thread.
    /// </summary>
    [ThreadStatic] public static bool Unsure;

    /// <summary>
    /// Set while a mask walk steps a projected state (<see cref="TokenVocabulary"/>): an object a token opens is
    /// then opened projected too (<see cref="ObjectFrame.Lexical"/>), as a mask key would hold it. Without this,
    /// every trie path through a key of an object opened inside a token (<c>{"</c>, <c>[{"</c>) kept its exact
    /// text, so a walk interned one state per trie node below it, filled the tables and cleared them (and, with
    /// them, every cached mask) every few steps: 32 random-weight rows took seconds per step.
    /// </summary>
    [ThreadStatic] public static bool Projecting;

    public static bool IsWhitespace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t';

    /// <summary>
    /// One byte of a string's content: <see cref="Close"/> for the closing quote, <see cref="NewChar"/> when it
    /// completes or starts a code point, <see cref="SameChar"/> when it is part of one, <see cref="Invalid"/> when
    /// JSON forbids it there. An escape counts once, at its last byte, and the low half of a \u surrogate pair
    /// not at all, so lengths are in code points as JSON Schema counts them. With <paramref name="full"/> (the
    /// string is at its maxLength) an escape may start only to finish a surrogate pair, so no escape is begun
    /// that could not end. <paramref name="esc"/>: 0 plain, 40 plain right after a high-surrogate escape,
    /// 1 after a backslash, 14/13/12/11 before the 1st..4th hex digit of a \u escape, 23 before the 2nd after a
    /// first digit D, 22/21 before the 3rd/4th digit of a low surrogate, 32/31 of a high one; 51–57 inside a UTF-8
    /// character (<see cref="Utf8After"/>). The content must be well-formed UTF-8 (RFC 8259 §8.1): a continuation
    /// byte only where a character still needs one, in the range its lead byte allows (no overlong forms, no
    /// surrogates, nothing past U+10FFFF), and no quote, backslash or other character until it is complete. Before,
    /// any continuation byte was accepted anywhere in a string and counted as no code point, so a random-weight
    /// model could write hundreds of them into a string of maxLength 24 (never closing it, and every one decoding
    /// to U+FFFD).
    /// </summary>
    public static int StringByte(byte esc, byte b, out byte next, bool full = false)
    {
        next = 0;
        if (esc >= Utf8Pending)
        {
            // Inside a character: 51 needs 1 more continuation byte, 52 two, 53 three; 54 two with the next in A0–BF
            // (after E0: no overlong form), 55 two with the next in 80–9F (after ED: no surrogate), 56 three with the
            // next in 90–BF (after F0: no overlong form), 57 three with the next in 80–8F (after F4: at most U+10FFFF).
            var (lo, hi) = esc switch { 54 => (0xA0, 0xBF), 55 => (0x80, 0x9F), 56 => (0x90, 0xBF), 57 => (0x80, 0x8F), _ => (0x80, 0xBF) };
            if (b < lo || b > hi) return Invalid;
            next = esc switch { 51 => 0, 52 or 54 or 55 => 51, _ => 52 };
            return SameChar;
        }
        if (esc == 1)
        {
            if (b == 'u') { next = 14; return SameChar; }
            if (full) return Invalid;
            return b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t' ? NewChar : Invalid;
        }
        if (esc is > 10 and < 40)
        {
            if (!Uri.IsHexDigit((char)b)) return Invalid;
            var d = b is (byte)'d' or (byte)'D';
            var low = b is >= (byte)'c' and <= (byte)'f' or >= (byte)'C' and <= (byte)'F';
            var high = b is >= (byte)'8' and <= (byte)'9' or >= (byte)'a' and <= (byte)'b' or >= (byte)'A' and <= (byte)'B';
            if (full && ((esc == 14 && !d) || (esc == 23 && !low))) return Invalid;
            next = esc switch
            {
                14 => d ? (byte)23 : (byte)13,
                23 => low ? (byte)22 : high ? (byte)32 : (byte)12,
                11 or 21 => 0,
                31 => 40,
                _ => (byte)(esc - 1),
            };
            return esc is 11 or 31 ? NewChar : SameChar;
        }
        if (b == '"') return Close;
        if (b == '\\')
        {
            if (full && esc != 40) return Invalid;
            next = 1;
            return SameChar;
        }
        if (b < 0x20) return Invalid;
        if (b is >= 0x80 and <= 0xBF) return Invalid; // a continuation byte with no character open
        if (b is 0xC0 or 0xC1 or >= 0xF5) return Invalid; // never in UTF-8
        next = Utf8After(b);
        return NewChar;
    }

    /// <summary>The first of the escape states that mean "inside a UTF-8 character" (<see cref="StringByte"/>).</summary>
    const byte Utf8Pending = 51;

    /// <summary>The string state after lead byte <paramref name="b"/> (0 for ASCII: the character is complete).</summary>
    static byte Utf8After(byte b) => b switch
    {
        < 0x80 => 0,
        <= 0xDF => 51,
        0xE0 => 54,
        0xED => 55,
        <= 0xEF => 52,
        0xF0 => 56,
        0xF4 => 57,
        _ => 53,
    };

    /// <summary>Starts a value of <paramref name="node"/> with byte <paramref name="b"/> above <paramref name="parent"/> (already waiting for it).</summary>
    public static void StartValue(SchemaNode node, ParseStack parent, byte b, List<ParseStack> output)
    {
        switch (node)
        {
            case UnionNode u:
                foreach (var option in u.Options) StartValue(option, parent, b, output);
                break;
            case AnyNode any:
                SchemaNode? part = b switch
                {
                    (byte)'{' => any.Object,
                    (byte)'[' => any.Array,
                    (byte)'"' => any.String,
                    (byte)'t' or (byte)'f' or (byte)'n' => any.Words,
                    _ => NumberFrame.First(b) is null ? null : any.Number,
                };
                if (part is not null) StartValue(part, parent, b, output);
                break;
            case ObjectNode o:
                if (b == '{') output.Add(new ParseStack(Projecting ? ObjectFrame.Open(o).Lexical() : ObjectFrame.Open(o), parent));
                break;
            case ArrayNode a:
                if (b == '[') output.Add(new ParseStack(new ArrayFrame(a, ArrayPhase.Open, 0, 0), parent));
                break;
            case StringNode s:
                if (b == '"') output.Add(new ParseStack(new StringFrame(s, 0, 0), parent));
                break;
            case NumberNode n:
                if (NumberFrame.First(b) is { } phase) output.Add(new ParseStack(new NumberFrame(n, phase, phase == NumberPhase.Minus ? 0 : 1), parent));
                break;
            case LiteralNode l:
                var first = ((char)b).ToString();
                if (l.Texts.Any(t => t.StartsWith(first, StringComparison.Ordinal))) output.Add(new ParseStack(new LiteralFrame(l, first), parent));
                break;
        }
    }

    /// <summary>Adds the stacks one byte leads to: the top frame's own steps, and, when its value may end here, the parent's step.</summary>
    public static void Step(ParseStack s, byte b, List<ParseStack> output)
    {
        s.Top.Step(s, b, output);
        if (s.Top.Finishable && s.Below is not null) Step(s.Pop(), b, output);
    }

    /// <summary>True when the output may end here: the whole value is complete.</summary>
    public static bool CanEnd(ParseStack s) =>
        s.Top is RootFrame { Complete: true } || (s.Top.Finishable && s.Below is not null && CanEnd(s.Pop()));
}
