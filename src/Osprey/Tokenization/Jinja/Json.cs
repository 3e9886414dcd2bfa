using System.Globalization;
using System.Text;

namespace Osprey.Tokenization.Jinja;

/// <summary>
/// Python's json.dumps as transformers' tojson filter calls it: ensure_ascii=False by default, insertion key
/// order unless sort_keys, separators (', ', ': ') without indent and (',', ': ') with one.
/// </summary>
internal static class Json
{
    public static string Dumps(object? value, object? indent, bool ensureAscii, object? separators, bool sortKeys)
    {
        string? indentText = indent switch
        {
            null => null,
            string s => s,
            _ => new string(' ', (int)Math.Max(0, Py.ToLong(indent))),
        };
        string itemSep = indentText is null ? ", " : ",", keySep = ": ";
        if (separators is List<object?> or object?[])
        {
            var seps = Py.AsList(separators);
            itemSep = Py.Str(seps[0]);
            keySep = Py.Str(seps[1]);
        }
        var sb = new StringBuilder();
        Write(sb, value, indentText, 0, itemSep, keySep, ensureAscii, sortKeys);
        return sb.ToString();
    }

    private static void NewLine(StringBuilder sb, string? indent, int level)
    {
        if (indent is null) return;
        sb.Append('\n');
        for (var i = 0; i < level; i++) sb.Append(indent);
    }

    private static void Write(StringBuilder sb, object? v, string? indent, int level, string itemSep, string keySep, bool ascii, bool sortKeys)
    {
        switch (v)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(Number(d)); break;
            case string s: WriteString(sb, s, ascii); break;
            case List<object?> or object?[]:
            {
                var list = Py.AsList(v);
                if (list.Count == 0)
                {
                    sb.Append("[]");
                    break;
                }
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, level + 1);
                    Write(sb, list[i], indent, level + 1, itemSep, keySep, ascii, sortKeys);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                break;
            }
            case Dictionary<object, object?> d:
            {
                if (d.Count == 0)
                {
                    sb.Append("{}");
                    break;
                }
                sb.Append('{');
                var items = d.Select(kv => (Key: KeyText(kv.Key), kv.Value)).ToList();
                if (sortKeys) items = [.. items.OrderBy(kv => kv.Key, Comparer<string>.Create(Py.CompareStrings))];
                var first = true;
                foreach (var (k, val) in items)
                {
                    if (!first) sb.Append(itemSep);
                    first = false;
                    NewLine(sb, indent, level + 1);
                    WriteString(sb, k, ascii);
                    sb.Append(keySep);
                    Write(sb, val, indent, level + 1, itemSep, keySep, ascii, sortKeys);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                break;
            }
            case Namespace:
                throw new RenderError("Object of type Namespace is not JSON serializable");
            default:
                throw new RenderError($"Object of type {Py.TypeName(v)} is not JSON serializable");
        }
    }

    private static string KeyText(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Number(d),
        _ => throw new RenderError($"keys must be str, int, float, bool or None, not {Py.TypeName(key)}"),
    };

    private static string Number(double d) =>
        double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : Py.FloatRepr(d);

    private static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (var c in s)
        {
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
                    if (c < 0x20 || (ascii && c > 0x7e)) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
