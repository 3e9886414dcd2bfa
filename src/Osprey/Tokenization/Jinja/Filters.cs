using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Osprey.Tokenization.Jinja;

/// <summary>Jinja2's built-in filters, with transformers' tojson in place of Jinja2's HTML-safe one.</summary>
internal static partial class Filters
{
    [GeneratedRegex(@"([-\s\(\{\[\<]+)")]
    private static partial Regex WordBeginning();

    [GeneratedRegex(@"\w+")]
    private static partial Regex Word();

    public static object? Apply(Renderer renderer, string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        object? Arg(int i, string key, object? dflt = null) =>
            i < args.Count ? args[i] : kwargs.TryGetValue(key, out var v) ? v : dflt;
        bool Flag(int i, string key) => Py.Truthy(Arg(i, key, false));

        switch (name)
        {
            case "tojson":
                // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
                return Json.Dumps(value, Arg(1, "indent"), Flag(0, "ensure_ascii"), Arg(2, "separators"), Flag(3, "sort_keys"));
            case "trim":
                return Methods.Strip(Py.Str(value), Arg(0, "chars"), true, true);
            case "length" or "count":
                return Py.Len(value);
            case "upper":
                return Py.Str(value).ToUpperInvariant();
            case "lower":
                return Py.Str(value).ToLowerInvariant();
            case "capitalize":
            {
                var s = Py.Str(value);
                return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            }
            case "title":
                return string.Concat(WordBeginning().Split(Py.Str(value)).Where(p => p.Length > 0)
                    .Select(p => char.ToUpperInvariant(p[0]) + p[1..].ToLowerInvariant()));
            case "default" or "d":
            {
                var dflt = Arg(0, "default_value", "");
                return value is Undefined || (Flag(1, "boolean") && !Py.Truthy(value)) ? dflt : value;
            }
            case "first":
                foreach (var item in Py.Iterate(value)) return item;
                return new Undefined("No first item, sequence was empty.");
            case "last":
            {
                var items = Py.Iterate(value).ToList();
                return items.Count > 0 ? items[^1] : new Undefined("No last item, sequence was empty.");
            }
            case "join":
            {
                var items = Py.Iterate(value);
                if (Arg(1, "attribute") is { } attr) items = items.Select(x => AttrGetter(x, attr));
                return string.Join(Py.Str(Arg(0, "d", "")), items.Select(Py.Str));
            }
            case "replace":
            {
                var count = Arg(2, "count") is { } c ? Py.ToLong(c) : -1;
                return Methods.Replace(Py.Str(value), Py.Str(Arg(0, "old")), Py.Str(Arg(1, "new")), count);
            }
            case "items":
                if (value is Undefined) return new List<object?>();
                if (value is not Dictionary<object, object?> dict) throw new RenderError($"Can only get item pairs from a mapping.");
                return dict.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList();
            case "list":
                return Py.Iterate(value).ToList();
            case "selectattr" or "rejectattr":
            {
                var attr = Arg(0, "attr") ?? throw new RenderError("selectattr needs an attribute");
                var keep = name == "selectattr";
                return Py.Iterate(value).Where(x => Check(AttrGetter(x, attr), args.Skip(1).ToList()) == keep).ToList();
            }
            case "select" or "reject":
            {
                var keep = name == "select";
                return Py.Iterate(value).Where(x => Check(x, args) == keep).ToList();
            }
            case "map":
            {
                if (kwargs.TryGetValue("attribute", out var attr))
                {
                    var hasDefault = kwargs.TryGetValue("default", out var dflt);
                    return Py.Iterate(value).Select(x =>
                    {
                        var v = AttrGetter(x, attr);
                        return hasDefault && v is Undefined ? dflt : v;
                    }).ToList();
                }
                if (args.Count == 0) throw new RenderError("map needs a filter name or attribute=");
                var filter = Py.Str(args[0]);
                var rest = args.Skip(1).ToList();
                return Py.Iterate(value).Select(x => Apply(renderer, filter, x, rest, kwargs)).ToList();
            }
            case "string" or "safe":
                return Py.Str(value);
            case "e" or "escape":
                // markupsafe's escaping: the five HTML-special characters, quotes as numeric references.
                return Py.Str(value).Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
            case "int":
                return ToInt(value, Arg(0, "default", 0L), Arg(1, "base", 10L));
            case "float":
                return ToFloat(value, Arg(0, "default", 0.0));
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double d => Math.Abs(d),
                    bool b => b ? 1L : 0L,
                    _ => throw new RenderError($"bad operand type for abs(): '{Py.TypeName(value)}'"),
                };
            case "round":
                return Round(Py.ToDouble(value), (int)Py.ToLong(Arg(0, "precision", 0L)), Py.Str(Arg(1, "method", "common")));
            case "indent":
                return Indent(Py.Str(value), Arg(0, "width", 4L), Flag(1, "first"), Flag(2, "blank"));
            case "unique":
            {
                var caseSensitive = Flag(0, "case_sensitive");
                var attr = Arg(1, "attribute");
                var seen = new List<object?>();
                var result = new List<object?>();
                foreach (var item in Py.Iterate(value))
                {
                    var key = SortKey(attr is null ? item : AttrGetter(item, attr), caseSensitive);
                    if (seen.Any(s => Py.Eq(s, key))) continue;
                    seen.Add(key);
                    result.Add(item);
                }
                return result;
            }
            case "reverse":
                if (value is string rs)
                {
                    var runes = rs.EnumerateRunes().Select(r => r.ToString()).ToList();
                    runes.Reverse();
                    return string.Concat(runes);
                }
                return Py.Iterate(value).Reverse().ToList();
            case "sort":
            {
                var reverse = Flag(0, "reverse");
                var caseSensitive = Flag(1, "case_sensitive");
                var attr = Arg(2, "attribute");
                var items = Py.Iterate(value).ToList();
                var keyed = items.Select(x => (Key: SortKey(attr is null ? x : AttrGetter(x, attr), caseSensitive), Item: x)).ToList();
                var sorted = StableSort(keyed, reverse);
                return sorted.Select(k => k.Item).ToList();
            }
            case "dictsort":
            {
                if (value is not Dictionary<object, object?> sortDict) throw new RenderError("dictsort expects a mapping");
                var caseSensitive = Flag(0, "case_sensitive");
                var byValue = Py.Str(Arg(1, "by", "key")) == "value";
                var reverse = Flag(2, "reverse");
                var keyed = sortDict.Select(kv => (Key: SortKey(byValue ? kv.Value : kv.Key, caseSensitive), Item: (object?)new object?[] { kv.Key, kv.Value })).ToList();
                return StableSort(keyed, reverse).Select(k => k.Item).ToList();
            }
            case "wordcount":
                return (long)Word().Matches(Py.Str(value)).Count;
            case "batch":
            {
                var size = (int)Py.ToLong(Arg(0, "linecount"));
                var fill = Arg(1, "fill_with");
                var hasFill = args.Count > 1 || kwargs.ContainsKey("fill_with");
                var result = new List<object?>();
                List<object?>? current = null;
                foreach (var item in Py.Iterate(value))
                {
                    current ??= [];
                    current.Add(item);
                    if (current.Count == size)
                    {
                        result.Add(current);
                        current = null;
                    }
                }
                if (current is not null)
                {
                    while (hasFill && current.Count < size) current.Add(fill);
                    result.Add(current);
                }
                return result;
            }
            case "min" or "max":
            {
                var items = Py.Iterate(value).ToList();
                if (items.Count == 0) return new Undefined($"No aggregated item, sequence was empty.");
                var caseSensitive = Flag(0, "case_sensitive");
                var attr = Arg(1, "attribute");
                var best = items[0];
                foreach (var item in items.Skip(1))
                {
                    var c = Py.Compare(SortKey(attr is null ? item : AttrGetter(item, attr), caseSensitive),
                        SortKey(attr is null ? best : AttrGetter(best, attr), caseSensitive));
                    if (name == "min" ? c < 0 : c > 0) best = item;
                }
                return best;
            }
            case "sum":
            {
                var attr = Arg(0, "attribute");
                object? total = Arg(1, "start", 0L);
                foreach (var item in Py.Iterate(value)) total = Arithmetic.Binary("+", total, attr is null ? item : AttrGetter(item, attr));
                return total;
            }
            case "center":
            {
                var s = Py.Str(value);
                var width = (int)Py.ToLong(Arg(0, "width", 80L));
                if (s.Length >= width) return s;
                var left = (width - s.Length) / 2 + ((width - s.Length) % 2 == 1 && width % 2 == 1 ? 1 : 0);
                return new string(' ', left) + s + new string(' ', width - s.Length - left);
            }
            case "format":
                return PercentFormat.Apply(Py.Str(value), kwargs.Count > 0 ? KwargsDict(kwargs) : args.ToArray());
            case "attr":
                return Renderer.GetAttr(value, Py.Str(Arg(0, "name")));
            case "pprint":
                return Py.Repr(value);
            default:
                throw new RenderError($"No filter named '{name}'");
        }
    }

    private static Dictionary<object, object?> KwargsDict(Dictionary<string, object?> kwargs)
    {
        var d = Py.NewDict();
        foreach (var (k, v) in kwargs) d[k] = v;
        return d;
    }

    /// <summary>Jinja2's test dispatch for select/reject: no test means truthiness.</summary>
    private static bool Check(object? value, List<object?> testArgs)
    {
        if (testArgs.Count == 0) return Py.Truthy(value);
        return BuiltinTests.Run(Py.Str(testArgs[0]), value, testArgs.Skip(1).ToList(), []);
    }

    /// <summary>Jinja2's attribute getter for filters: dotted paths, integer parts index into sequences.</summary>
    private static object? AttrGetter(object? item, object? attribute)
    {
        var parts = attribute is string s ? s.Split('.').Select(p => long.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? (object)n : p).ToList() : [attribute!];
        foreach (var part in parts)
        {
            if (item is Undefined) return item;
            item = Renderer.GetItem(item, part);
        }
        return item;
    }

    private static object? SortKey(object? value, bool caseSensitive) =>
        !caseSensitive && value is string s ? s.ToLowerInvariant() : value;

    private static List<(object? Key, object? Item)> StableSort(List<(object? Key, object? Item)> items, bool reverse)
    {
        var indexed = items.Select((x, i) => (x.Key, x.Item, Index: i)).ToList();
        indexed.Sort((a, b) =>
        {
            var c = Py.Compare(a.Key, b.Key);
            if (reverse) c = -c;
            return c != 0 ? c : a.Index.CompareTo(b.Index);
        });
        return indexed.Select(x => (x.Key, x.Item)).ToList();
    }

    private static object? ToInt(object? value, object? dflt, object? baseArg)
    {
        switch (value)
        {
            case long or bool: return Py.ToLong(value);
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : dflt;
            case string s:
            {
                var t = s.Trim().Replace("_", "");
                var b = (int)Py.ToLong(baseArg);
                try
                {
                    if (b == 10 && long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return l;
                    if (b != 10) return Convert.ToInt64(t, b);
                }
                catch (FormatException)
                {
                    return dflt;
                }
                return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f) ? (long)Math.Truncate(f) : dflt;
            }
            default: return dflt;
        }
    }

    private static object? ToFloat(object? value, object? dflt) => value switch
    {
        long or bool or double => Py.ToDouble(value),
        string s => s.Trim().ToLowerInvariant() switch
        {
            "inf" or "+inf" or "infinity" => double.PositiveInfinity,
            "-inf" or "-infinity" => double.NegativeInfinity,
            "nan" => double.NaN,
            var t => double.TryParse(t.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) ? f : dflt,
        },
        _ => dflt,
    };

    private static double Round(double value, int precision, string method)
    {
        var factor = Math.Pow(10, precision);
        return method switch
        {
            "ceil" => Math.Ceiling(value * factor) / factor,
            "floor" => Math.Floor(value * factor) / factor,
            // Python's round(): half to even on the decimal value nearest the double.
            _ => Math.Round(value, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven),
        };
    }

    private static string Indent(string s, object? width, bool first, bool blank)
    {
        var indention = width is string w ? w : new string(' ', (int)Py.ToLong(width));
        // Jinja2 appends a newline before splitting so a trailing newline survives as an empty last line.
        s += "\n";
        var lines = s.Split('\n').ToList();
        lines.RemoveAt(lines.Count - 1);
        string rv;
        if (blank)
        {
            rv = string.Join("\n" + indention, lines);
        }
        else
        {
            var sb = new StringBuilder(lines[0]);
            if (lines.Count > 1)
            {
                sb.Append('\n').Append(string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? indention + l : l)));
            }
            rv = sb.ToString();
        }
        return first ? indention + rv : rv;
    }
}
