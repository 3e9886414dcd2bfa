using System.Text;

namespace Osprey.Inference.Constraints;

/// <summary>
/// Decides candidate tokens for one row at one step while it writes a key of a free-form object (json_object, a map),
/// where nearly every token that closes the key is a candidate (the mask key forgets the keys written before, so a
/// close may make a duplicate). Stepping such a token through the real state grew the key's text a byte at a time
/// and unescaped the whole key at the close: O(key length) of allocation per candidate, and with 32 rows writing long
/// keys 2.8 MB a step, which on a 16-core GPU host made the masks' garbage collections the step's largest cost.
/// </summary>
/// <remarks>
/// Same verdicts as <see cref="GrammarState.DeadAfter"/>: the bytes up to the closing quote are checked as key content
/// (the same per-byte rule); since the key so far is well-formed and outside any escape, the name is its unescaped
/// text followed by the unescaped new part (null, so refused, exactly when that part is not well-formed on its
/// own), and a name written before is refused. What follows the quote is stepped from the state after the close,
/// once per distinct remainder (most candidates end in the same few: <c>":</c>, <c>": "</c>, <c>":{</c>); that state
/// stands in for every name, so a remainder with a comma (which could start another key, whose duplicate check
/// would need this name) is left to <see cref="GrammarState.DeadAfter"/>, as is a token that does not close the key.
/// </remarks>
internal sealed class KeyCloser(ParseStack stack, ObjectFrame frame, string written)
{
    GrammarState? _after;
    readonly Dictionary<string, bool> _rests = new(StringComparer.Ordinal);

    /// <summary>True when <paramref name="bytes"/> leave no output possible, false when they do, null when the state must step them.</summary>
    public bool? Dead(ReadOnlySpan<byte> bytes)
    {
        byte esc = 0;
        var close = -1;
        for (var i = 0; i < bytes.Length; i++)
        {
            var kind = JsonMachine.StringByte(esc, bytes[i], out var next);
            if (kind == JsonMachine.Invalid) return true;
            if (kind == JsonMachine.Close)
            {
                close = i;
                break;
            }
            esc = next;
        }
        if (close < 0) return null;
        var rest = bytes[(close + 1)..];
        if (rest.Contains((byte)',')) return null;
        if (Part(bytes[..close]) is not { } part) return true;
        // A name holding U+0000 (Seen's separator) is left to Has itself.
        if (part.Contains('\0') || written.Contains('\0')) return null;
        if (frame.HasJoined(written, part)) return true;
        var key = Encoding.Latin1.GetString(rest);
        if (_rests.TryGetValue(key, out var dead)) return dead;
        _after ??= new GrammarState([stack.WithTop(frame.AfterKey(ObjectFrame.OtherKey))]);
        dead = _after.DeadAfter(rest);
        _rests[key] = dead;
        return dead;
    }

    /// <summary>The unescaped text of key content <paramref name="bytes"/> (null when not well-formed on its own).</summary>
    static string? Part(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return "";
        if (!bytes.Contains((byte)'\\') && System.Text.Unicode.Utf8.IsValid(bytes)) return Encoding.UTF8.GetString(bytes);
        return JsonText.Unescape(Encoding.Latin1.GetString(bytes));
    }
}
