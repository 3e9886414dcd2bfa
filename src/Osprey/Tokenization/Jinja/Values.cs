using System.Collections;
using System.Text.Json;

namespace Osprey.Tokenization.Jinja;

/// <summary>An error raised while rendering; the renderer adds the template position.</summary>
internal sealed class RenderError(string message) : Exception(message);

/// <summary>raise_exception('...') from a template: surfaces with exactly the template's message.</summary>
internal sealed class TemplateRaised(string message) : Exception(message);

/// <summary>Jinja2's default Undefined: prints empty, is falsy, iterates as empty, fails on most other use.</summary>
internal sealed class Undefined(string hint)
{
    public string Hint { get; } = hint;
}

/// <summary>The object namespace() returns: attributes assignable with {% set ns.x = ... %} from any scope.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = [];
}

/// <summary>Anything a template can call: globals, macros and methods bound to a value.</summary>
internal interface ICallable
{
    object? Call(Renderer renderer, List<object?> args, Dictionary<string, object?> kwargs);
}

internal sealed class BuiltinFunction(string name, Func<Renderer, List<object?>, Dictionary<string, object?>, object?> body) : ICallable
{
    public string Name { get; } = name;

    public object? Call(Renderer renderer, List<object?> args, Dictionary<string, object?> kwargs) => body(renderer, args, kwargs);
}

internal sealed class BoundMethod(object target, string name) : ICallable
{
    public object Target { get; } = target;

    public string Name { get; } = name;

    public object? Call(Renderer renderer, List<object?> args, Dictionary<string, object?> kwargs) =>
        Methods.Invoke(Target, Name, args, kwargs);
}

/// <summary>Python equality and hashing for dictionary keys (1 and 1.0 and True are the same key).</summary>
internal sealed class KeyComparer : IEqualityComparer<object>
{
    public static readonly KeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => Py.Eq(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => ((long)d).GetHashCode(),
        object?[] t => t.Length,
        _ => obj.GetHashCode(),
    };
}

/// <summary>
/// Python semantics for template values. Values are null (None), bool, long, double, string, List (list),
/// object?[] (tuple), Dictionary (dict, insertion-ordered), Undefined, Namespace, LoopContext and callables.
/// </summary>
internal static partial class Py
{
    public static Dictionary<object, object?> NewDict() => new(KeyComparer.Instance);

    /// <summary>Turns caller-supplied .NET values into template values.</summary>
    public static object? FromExternal(object? value) => value switch
    {
        null => null,
        string or bool or long or double => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (long)u,
        ulong ul => (long)ul,
        float f => (double)f,
        decimal m => (double)m,
        char c => c.ToString(),
        JsonElement e => FromJson(e),
        Undefined or Namespace or ICallable or Dictionary<object, object?> or object?[] => value,
        IReadOnlyDictionary<string, object?> d => ConvertDict(d.Select(kv => new KeyValuePair<object, object?>(kv.Key, kv.Value))),
        IDictionary d => ConvertDict(d.Keys.Cast<object>().Select(k => new KeyValuePair<object, object?>(FromExternal(k) ?? "None", d[k]))),
        IEnumerable e => e.Cast<object?>().Select(FromExternal).ToList(),
        _ => value.ToString(),
    };

    private static Dictionary<object, object?> ConvertDict(IEnumerable<KeyValuePair<object, object?>> items)
    {
        var dict = NewDict();
        foreach (var (k, v) in items) dict[k] = FromExternal(v);
        return dict;
    }

    private static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        _ => ConvertDict(e.EnumerateObject().Select(p => new KeyValuePair<object, object?>(p.Name, FromJson(p.Value)))),
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static bool IsInt(object? v) => v is long or bool;

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new RenderError($"{TypeName(v)} is not an integer"),
    };

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => d,
        _ => throw new RenderError($"{TypeName(v)} is not a number"),
    };

    public static bool IsSequence(object? v) => v is List<object?> or object?[];

    public static IReadOnlyList<object?> AsList(object? v) => v switch
    {
        List<object?> l => l,
        object?[] t => t,
        _ => throw new RenderError($"{TypeName(v)} is not a list"),
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        Dictionary<object, object?> => "dict",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        _ => "function",
    };

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        object?[] t => t.Length > 0,
        Dictionary<object, object?> d => d.Count > 0,
        _ => true,
    };

    /// <summary>Iterates the way Python's iter() does; Undefined iterates as empty (Jinja2's default Undefined).</summary>
    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        Undefined => [],
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()),
        List<object?> l => l,
        object?[] t => t,
        Dictionary<object, object?> d => d.Keys,
        _ => throw new RenderError($"'{TypeName(v)}' object is not iterable"),
    };

    public static long Len(object? v) => v switch
    {
        Undefined => 0,
        string s => s.EnumerateRunes().Count(),
        List<object?> l => l.Count,
        object?[] t => t.Length,
        Dictionary<object, object?> d => d.Count,
        _ => throw new RenderError($"object of type '{TypeName(v)}' has no len()"),
    };

    public static bool Eq(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInt(a) && IsInt(b) ? ToLong(a) == ToLong(b) : ToDouble(a) == ToDouble(b);
        }
        switch (a)
        {
            case string s: return b is string t && s == t;
            case Undefined: return b is Undefined;
            case List<object?> l: return b is List<object?> m && SeqEq(l, m);
            case object?[] tuple: return b is object?[] other && SeqEq(tuple, other);
            case Dictionary<object, object?> d:
                if (b is not Dictionary<object, object?> e || d.Count != e.Count) return false;
                foreach (var (k, v) in d)
                {
                    if (!e.TryGetValue(k, out var w) || !Eq(v, w)) return false;
                }
                return true;
            default: return ReferenceEquals(a, b);
        }
    }

    private static bool SeqEq(IReadOnlyList<object?> a, IReadOnlyList<object?> b)
    {
        if (a.Count != b.Count) return false;
        for (var i = 0; i < a.Count; i++)
        {
            if (!Eq(a[i], b[i])) return false;
        }
        return true;
    }

    /// <summary>Python ordering for numbers, strings (by code point) and sequences; other mixes are errors.</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInt(a) && IsInt(b) ? ToLong(a).CompareTo(ToLong(b)) : ToDouble(a).CompareTo(ToDouble(b));
        }
        if (a is string s && b is string t) return CompareStrings(s, t);
        if (a is List<object?> or object?[] && b is List<object?> or object?[] && a.GetType() == b.GetType())
        {
            var x = AsList(a);
            var y = AsList(b);
            for (var i = 0; i < Math.Min(x.Count, y.Count); i++)
            {
                if (!Eq(x[i], y[i])) return Compare(x[i], y[i], op);
            }
            return x.Count.CompareTo(y.Count);
        }
        throw new RenderError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static int CompareStrings(string a, string b)
    {
        // Python compares code points; ordinal UTF-16 comparison differs only for surrogates vs. U+E000..U+FFFF.
        var ea = a.EnumerateRunes().GetEnumerator();
        var eb = b.EnumerateRunes().GetEnumerator();
        while (true)
        {
            var ha = ea.MoveNext();
            var hb = eb.MoveNext();
            if (!ha || !hb) return ha.CompareTo(hb);
            var c = ea.Current.Value.CompareTo(eb.Current.Value);
            if (c != 0) return c;
        }
    }

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string t ? s.Contains(t, StringComparison.Ordinal) : throw new RenderError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        Dictionary<object, object?> d => item is not null && d.ContainsKey(item),
        Undefined => false,
        _ => Iterate(container).Any(x => Eq(x, item)),
    };
}
