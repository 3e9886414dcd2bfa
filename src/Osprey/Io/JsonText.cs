using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Io;

/// <summary>
/// Compact JSON with non-ASCII text written as is, like Python's <c>json.dumps(obj, ensure_ascii=False,
/// separators=(",", ":"))</c>: only '"', '\' and control characters are escaped (System.Text.Json's encoders
/// escape every character outside the Basic Multilingual Plane, emoji included, and more besides).
/// </summary>
public static class JsonText
{
    /// <summary>Serialises a JSON tree.</summary>
    public static string Of(JsonNode? node)
    {
        var sb = new StringBuilder();
        Append(sb, node);
        return sb.ToString();
    }

    /// <summary>Appends <paramref name="node"/> to <paramref name="sb"/>.</summary>
    public static void Append(StringBuilder sb, JsonNode? node)
    {
        switch (node)
        {
            case null:
                sb.Append("null");
                break;
            case JsonObject obj:
                sb.Append('{');
                var first = true;
                foreach (var (key, value) in obj)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    AppendString(sb, key);
                    sb.Append(':');
                    Append(sb, value);
                }
                sb.Append('}');
                break;
            case JsonArray array:
                sb.Append('[');
                for (var i = 0; i < array.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    Append(sb, array[i]);
                }
                sb.Append(']');
                break;
            case JsonValue value:
                switch (value.GetValueKind())
                {
                    case JsonValueKind.String:
                        AppendString(sb, value.GetValue<string>());
                        break;
                    case JsonValueKind.True:
                        sb.Append("true");
                        break;
                    case JsonValueKind.False:
                        sb.Append("false");
                        break;
                    case JsonValueKind.Null:
                        sb.Append("null");
                        break;
                    default: // numbers have nothing to escape; keep their text as given
                        sb.Append(value.ToJsonString());
                        break;
                }
                break;
        }
    }

    /// <summary>Appends an array of integers.</summary>
    public static void AppendInts(StringBuilder sb, IReadOnlyList<int> ids)
    {
        sb.Append('[');
        for (var i = 0; i < ids.Count; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(ids[i].ToString(CultureInfo.InvariantCulture));
        }
        sb.Append(']');
    }

    /// <summary>Appends a quoted JSON string.</summary>
    public static void AppendString(StringBuilder sb, string text)
    {
        sb.Append('"');
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (char.IsSurrogate(c) && !IsPairAt(text, i)))
                    {
                        // Control characters must be escaped; so must a lone surrogate, which UTF-8 cannot hold.
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else if (char.IsHighSurrogate(c))
                    {
                        sb.Append(c).Append(text[++i]);
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        sb.Append('"');
    }

    private static bool IsPairAt(string text, int i) =>
        char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
}
