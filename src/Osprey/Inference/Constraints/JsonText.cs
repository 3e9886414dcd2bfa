using System.Text;
using System.Text.Json;

namespace Osprey.Inference.Constraints;

/// <summary>How the grammar writes fixed JSON text (names, enum values) and reads back object keys.</summary>
internal static class JsonText
{
    /// <summary>
    /// The UTF-8 bytes of a string's content as JSON writes it with the least escaping: only the quote, the
    /// backslash and control characters are escaped, so a model writes names as they read.
    /// </summary>
    public static byte[] EscapeContent(string s)
    {
        var b = new StringBuilder(s.Length + 2);
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                case '\b': b.Append("\\b"); break;
                case '\f': b.Append("\\f"); break;
                default:
                    if (c < 0x20) b.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
                    else b.Append(c);
                    break;
            }
        }
        return Encoding.UTF8.GetBytes(b.ToString());
    }

    /// <summary>Bytes as a string of one char per byte (the grammar's alphabet), so fixed texts compare as strings.</summary>
    public static string Latin1(byte[] bytes) => Encoding.Latin1.GetString(bytes);

    /// <summary>A JSON value written compactly with <see cref="EscapeContent"/>'s escaping, as bytes one char per byte.</summary>
    public static string Compact(JsonElement e)
    {
        var b = new StringBuilder();
        Write(e, b);
        return Latin1(Encoding.UTF8.GetBytes(b.ToString()));
    }

    static void Write(JsonElement e, StringBuilder b)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                b.Append('{');
                var first = true;
                foreach (var p in e.EnumerateObject())
                {
                    if (!first) b.Append(',');
                    first = false;
                    b.Append('"').Append(Encoding.UTF8.GetString(EscapeContent(p.Name))).Append("\":");
                    Write(p.Value, b);
                }
                b.Append('}');
                break;
            case JsonValueKind.Array:
                b.Append('[');
                var i = 0;
                foreach (var item in e.EnumerateArray())
                {
                    if (i++ > 0) b.Append(',');
                    Write(item, b);
                }
                b.Append(']');
                break;
            case JsonValueKind.String:
                b.Append('"').Append(Encoding.UTF8.GetString(EscapeContent(e.GetString()!))).Append('"');
                break;
            default:
                b.Append(e.GetRawText());
                break;
        }
    }

    /// <summary>The text of a key's content as written (one char per byte), unescaped; null when it is not valid JSON string content.</summary>
    /// <remarks>
    /// Called once per candidate token that closes a key, so for a row inside a key it runs for dozens of
    /// candidates a step on the same key: the last answer is kept per thread (keyed by the string's reference, as
    /// those candidates share the frame's key), and text that is not UTF-8, which a model writes byte by byte,
    /// is answered without throwing (an exception per candidate per row made a step of 32 rows cost 100+ ms).
    /// </remarks>
    public static string? Unescape(string written)
    {
        if (ReferenceEquals(written, t_lastWritten)) return t_lastResult;
        var result = UnescapeNew(written);
        t_lastWritten = written;
        t_lastResult = result;
        return result;
    }

    [ThreadStatic] static string? t_lastWritten;
    [ThreadStatic] static string? t_lastResult;

    /// <summary>Unescapes (see <see cref="Unescape"/>) without the cache.</summary>
    static string? UnescapeNew(string written)
    {
        var bytes = new byte[written.Length + 2];
        bytes[0] = (byte)'"';
        for (var i = 0; i < written.Length; i++)
        {
            if (written[i] > 0xFF) return null;
            bytes[i + 1] = (byte)written[i];
        }
        bytes[^1] = (byte)'"';
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) return null;
        try
        {
            var reader = new Utf8JsonReader(bytes);
            return reader.Read() ? reader.GetString() : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return null; // an escape that is not a valid code point (a lone surrogate): rare, unlike invalid UTF-8
        }
    }
}
