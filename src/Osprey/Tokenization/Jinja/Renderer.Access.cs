
namespace Osprey.Tokenization.Jinja;

// Jinja2's attribute, item and slice access on the renderer's values.
internal sealed partial class Renderer
{
    /// <summary>Jinja2's getattr: an attribute (method) of the value first, then its item of that name.</summary>
    public static object? GetAttr(object? target, string name)
    {
        switch (target)
        {
            case Undefined u:
                throw new RenderError(u.Hint);
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var v) ? v : new Undefined($"'Namespace object' has no attribute '{name}'");
            case LoopContext loop:
                return loop.Get(name);
            case null:
                return new Undefined($"'None' has no attribute '{name}'");
        }
        if (Methods.Has(target, name)) return new BoundMethod(target, name);
        if (target is Dictionary<object, object?> d && d.TryGetValue(name, out var item)) return item;
        return new Undefined($"'{Py.TypeName(target)} object' has no attribute '{name}'");
    }

    /// <summary>Jinja2's getitem: the item first, then (for a string key) the attribute of that name.</summary>
    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Undefined u:
                throw new RenderError(u.Hint);
            case Dictionary<object, object?> d:
                if (key is not null && d.TryGetValue(key, out var v)) return v;
                break;
            case List<object?> or object?[] when Py.IsInt(key):
            {
                var list = Py.AsList(target);
                var i = Py.ToLong(key);
                if (i < 0) i += list.Count;
                if (i >= 0 && i < list.Count) return list[(int)i];
                return new Undefined($"'{Py.TypeName(target)} object' has no element {Py.Str(key)}");
            }
            case string s when Py.IsInt(key):
            {
                var runes = s.EnumerateRunes().ToList();
                var i = Py.ToLong(key);
                if (i < 0) i += runes.Count;
                if (i >= 0 && i < runes.Count) return runes[(int)i].ToString();
                return new Undefined($"'str object' has no element {Py.Str(key)}");
            }
        }
        if (key is string name && target is not null) return GetAttr(target, name);
        return new Undefined($"'{Py.TypeName(target)} object' has no element {Py.Repr(key)}");
    }

    private static object? Slice(object? target, object? start, object? stop, object? step)
    {
        var stepValue = step is null ? 1 : Py.ToLong(step);
        if (stepValue == 0) throw new RenderError("slice step cannot be zero");
        List<object?> items = target switch
        {
            string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
            List<object?> or object?[] => Py.AsList(target).ToList(),
            Undefined u => throw new RenderError(u.Hint),
            _ => throw new RenderError($"'{Py.TypeName(target)}' object is not subscriptable"),
        };
        long n = items.Count;
        long Clamp(object? v, long dflt, bool isStart)
        {
            if (v is null) return dflt;
            var i = Py.ToLong(v);
            if (i < 0) i += n;
            return stepValue > 0 ? Math.Clamp(i, 0, n) : Math.Clamp(i, -1, n - 1);
        }
        var lo = Clamp(start, stepValue > 0 ? 0 : n - 1, true);
        var hi = Clamp(stop, stepValue > 0 ? n : -1, false);
        var result = new List<object?>();
        if (stepValue > 0)
        {
            for (var i = lo; i < hi; i += stepValue) result.Add(items[(int)i]);
        }
        else
        {
            for (var i = lo; i > hi; i += stepValue) result.Add(items[(int)i]);
        }
        return target switch
        {
            string => string.Concat(result.Select(r => (string)r!)),
            object?[] => result.ToArray(),
            _ => result,
        };
    }
}
