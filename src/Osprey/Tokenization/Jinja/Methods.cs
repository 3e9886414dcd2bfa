using System.Text;

namespace Osprey.Tokenization.Jinja;

/// <summary>
/// The Python str and dict methods templates call (the sandbox forbids mutating ones such as list.append).
/// </summary>
internal static class Methods
{
    private static readonly HashSet<string> s_string =
    [
        "split", "rsplit", "strip", "lstrip", "rstrip", "startswith", "endswith", "replace", "upper", "lower", "title",
        "capitalize", "find", "rfind", "count", "join", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper",
        "splitlines", "index", "format",
    ];

    private static readonly HashSet<string> s_dict = ["items", "keys", "values", "get"];

    private static readonly HashSet<string> s_list = ["index", "count"];

    public static bool Has(object target, string name) => target switch
    {
        string => s_string.Contains(name),
        Dictionary<object, object?> => s_dict.Contains(name),
        List<object?> or object?[] => s_list.Contains(name),
        _ => false,
    };

    private static object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int i, string name, object? dflt = null) =>
        i < args.Count ? args[i] : kwargs.TryGetValue(name, out var v) ? v : dflt;

    public static object? Invoke(object target, string name, List<object?> args, Dictionary<string, object?> kwargs)
    {
        switch (target)
        {
            case string s:
                return StringMethod(s, name, args, kwargs);
            case Dictionary<object, object?> d:
                return name switch
                {
                    "items" => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
                    "keys" => d.Keys.Select(k => (object?)k).ToList(),
                    "values" => d.Values.ToList(),
                    _ => Arg(args, kwargs, 0, "key") is { } key && d.TryGetValue(key, out var v) ? v : Arg(args, kwargs, 1, "default"),
                };
            default:
            {
                var list = Py.AsList(target);
                var item = Arg(args, kwargs, 0, "value");
                if (name == "count") return (long)list.Count(x => Py.Eq(x, item));
                for (var i = 0; i < list.Count; i++)
                {
                    if (Py.Eq(list[i], item)) return (long)i;
                }
                throw new RenderError($"{Py.Repr(item)} is not in list");
            }
        }
    }

    private static object? StringMethod(string s, string name, List<object?> args, Dictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "split":
            case "rsplit":
            {
                var sep = Arg(args, kwargs, 0, "sep");
                var max = Arg(args, kwargs, 1, "maxsplit") is { } m ? Py.ToLong(m) : -1;
                var parts = sep is null ? SplitWhitespace(s, max, name == "rsplit") : SplitSep(s, Py.Str(sep), max, name == "rsplit");
                return parts.Select(p => (object?)p).ToList();
            }
            case "strip": return Strip(s, Arg(args, kwargs, 0, "chars"), true, true);
            case "lstrip": return Strip(s, Arg(args, kwargs, 0, "chars"), true, false);
            case "rstrip": return Strip(s, Arg(args, kwargs, 0, "chars"), false, true);
            case "startswith":
            case "endswith":
            {
                var what = Arg(args, kwargs, 0, "prefix");
                var options = what is object?[] or List<object?> ? Py.AsList(what).Select(Py.Str) : [Py.Str(what)];
                return options.Any(o => name == "startswith" ? s.StartsWith(o, StringComparison.Ordinal) : s.EndsWith(o, StringComparison.Ordinal));
            }
            case "replace":
            {
                var count = Arg(args, kwargs, 2, "count") is { } c ? Py.ToLong(c) : -1;
                return Replace(s, Py.Str(Arg(args, kwargs, 0, "old")), Py.Str(Arg(args, kwargs, 1, "new")), count);
            }
            case "upper": return s.ToUpperInvariant();
            case "lower": return s.ToLowerInvariant();
            case "title": return PyTitle(s);
            case "capitalize": return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            case "find":
            {
                var start = Arg(args, kwargs, 1, "start") is { } st ? (int)Math.Clamp(Py.ToLong(st) < 0 ? Py.ToLong(st) + s.Length : Py.ToLong(st), 0, s.Length) : 0;
                return (long)s.IndexOf(Py.Str(Arg(args, kwargs, 0, "sub")), start, StringComparison.Ordinal);
            }
            case "rfind": return (long)s.LastIndexOf(Py.Str(Arg(args, kwargs, 0, "sub")), StringComparison.Ordinal);
            case "index":
            {
                var i = s.IndexOf(Py.Str(Arg(args, kwargs, 0, "sub")), StringComparison.Ordinal);
                return i >= 0 ? (long)i : throw new RenderError("substring not found");
            }
            case "count":
            {
                var sub = Py.Str(Arg(args, kwargs, 0, "sub"));
                if (sub.Length == 0) return Py.Len(s) + 1;
                long n = 0;
                for (var i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
                return n;
            }
            case "join": return string.Join(s, Py.Iterate(Arg(args, kwargs, 0, "iterable")).Select(x => x is string t ? t : throw new RenderError($"sequence item: expected str instance, {Py.TypeName(x)} found")));
            case "isdigit": return s.Length > 0 && s.All(char.IsDigit);
            case "isalpha": return s.Length > 0 && s.All(char.IsLetter);
            case "isalnum": return s.Length > 0 && s.All(char.IsLetterOrDigit);
            case "isspace": return s.Length > 0 && s.All(IsSpace);
            case "islower": return s.Any(char.IsLetter) && !s.Any(char.IsUpper);
            case "isupper": return s.Any(char.IsLetter) && !s.Any(char.IsLower);
            case "splitlines": return s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).Take(s.EndsWith('\n') ? s.Split('\n').Length - 1 : int.MaxValue).ToList();
            case "format": return Format(s, args, kwargs);
            default: throw new RenderError($"'str' object has no attribute '{name}'");
        }
    }

    private static string Format(string s, List<object?> args, Dictionary<string, object?> kwargs)
    {
        // Only plain {} / {0} / {name} fields; format specs are not supported.
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '{' && i + 1 < s.Length && s[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < s.Length && s[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c != '{') { sb.Append(c); continue; }
            var end = s.IndexOf('}', i);
            if (end < 0) throw new RenderError("Single '{' encountered in format string");
            var field = s[(i + 1)..end];
            object? value;
            if (field.Length == 0) value = auto < args.Count ? args[auto++] : throw new RenderError("Replacement index out of range");
            else if (int.TryParse(field, out var idx)) value = idx < args.Count ? args[idx] : throw new RenderError("Replacement index out of range");
            else value = kwargs.TryGetValue(field, out var v) ? v : throw new RenderError($"'{field}'");
            sb.Append(Py.Str(value));
            i = end;
        }
        return sb.ToString();
    }

    /// <summary>Python's str.isspace for one char: .NET's white space plus the separators U+001C–U+001F.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    private static string TrimStartPy(string s)
    {
        var i = 0;
        while (i < s.Length && IsSpace(s[i])) i++;
        return i == 0 ? s : s[i..];
    }

    private static string TrimEndPy(string s)
    {
        var e = s.Length;
        while (e > 0 && IsSpace(s[e - 1])) e--;
        return e == s.Length ? s : s[..e];
    }

    public static string Strip(string s, object? chars, bool left, bool right)
    {
        if (chars is null or Undefined)
        {
            if (left) s = TrimStartPy(s);
            if (right) s = TrimEndPy(s);
            return s;
        }
        var set = Py.Str(chars).ToCharArray();
        if (left) s = s.TrimStart(set);
        if (right) s = s.TrimEnd(set);
        return s;
    }

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0) return old.Length == 0 ? ReplaceEmpty(s, replacement, long.MaxValue) : s.Replace(old, replacement, StringComparison.Ordinal);
        if (old.Length == 0) return ReplaceEmpty(s, replacement, count);
        var sb = new StringBuilder();
        var pos = 0;
        for (long n = 0; n < count; n++)
        {
            var i = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (i < 0) break;
            sb.Append(s, pos, i - pos).Append(replacement);
            pos = i + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    private static string ReplaceEmpty(string s, string replacement, long count)
    {
        var sb = new StringBuilder();
        long n = 0;
        foreach (var c in s)
        {
            if (n++ < count) sb.Append(replacement);
            sb.Append(c);
        }
        if (n < count) sb.Append(replacement);
        return sb.ToString();
    }

    private static List<string> SplitWhitespace(string s, long max, bool fromRight)
    {
        var words = new List<string>();
        for (var i = 0; i < s.Length;)
        {
            while (i < s.Length && IsSpace(s[i])) i++;
            var start = i;
            while (i < s.Length && !IsSpace(s[i])) i++;
            if (i > start) words.Add(s[start..i]);
        }
        if (max < 0 || words.Count <= max + 1) return words;
        // Python keeps the unsplit remainder (with its inner whitespace) as the last (or first) part.
        if (!fromRight)
        {
            var result = new List<string>();
            var rest = TrimStartPy(s);
            for (var i = 0; i < max; i++)
            {
                var end = 0;
                while (end < rest.Length && !IsSpace(rest[end])) end++;
                result.Add(rest[..end]);
                rest = TrimStartPy(rest[end..]);
            }
            result.Add(rest);
            return result;
        }
        else
        {
            var result = new List<string>();
            var rest = TrimEndPy(s);
            for (var i = 0; i < max; i++)
            {
                var start = rest.Length;
                while (start > 0 && !IsSpace(rest[start - 1])) start--;
                result.Insert(0, rest[start..]);
                rest = TrimEndPy(rest[..start]);
            }
            result.Insert(0, rest);
            return result;
        }
    }

    private static List<string> SplitSep(string s, string sep, long max, bool fromRight)
    {
        if (sep.Length == 0) throw new RenderError("empty separator");
        var parts = s.Split(sep).ToList();
        if (max < 0 || parts.Count <= max + 1) return parts;
        if (!fromRight)
        {
            var head = parts.Take((int)max).ToList();
            head.Add(string.Join(sep, parts.Skip((int)max)));
            return head;
        }
        var tail = parts.Skip(parts.Count - (int)max).ToList();
        tail.Insert(0, string.Join(sep, parts.Take(parts.Count - (int)max)));
        return tail;
    }

    /// <summary>Python's str.title: a letter is upper-cased when it follows a non-letter, lower-cased otherwise.</summary>
    private static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        var prevLetter = false;
        foreach (var c in s)
        {
            sb.Append(prevLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            prevLetter = char.IsLetter(c);
        }
        return sb.ToString();
    }
}
