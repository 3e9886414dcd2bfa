namespace Osprey.Tokenization.Jinja;

/// <summary>Jinja2's tests (the right-hand side of 'is').</summary>
internal static class BuiltinTests
{
    public static bool Run(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        object? Arg(int i) => i < args.Count ? args[i] : kwargs.Values.Skip(i - args.Count).FirstOrDefault();
        switch (name)
        {
            case "defined": return value is not Undefined;
            case "undefined": return value is Undefined;
            case "none": return value is null;
            case "string": return value is string;
            case "number": return value is long or double or bool;
            case "integer": return value is long;
            case "float": return value is double;
            case "boolean": return value is bool;
            case "true": return value is true;
            case "false": return value is false;
            case "mapping": return value is Dictionary<object, object?>;
            case "iterable": return value is string or List<object?> or object?[] or Dictionary<object, object?> or Undefined;
            case "sequence": return value is string or List<object?> or object?[] or Dictionary<object, object?>;
            case "callable": return value is ICallable;
            case "equalto" or "==" or "eq": return Py.Eq(value, Arg(0));
            case "ne" or "!=": return !Py.Eq(value, Arg(0));
            case "lt" or "<" or "lessthan": return Py.Compare(value, Arg(0), "<") < 0;
            case "le" or "<=": return Py.Compare(value, Arg(0), "<=") <= 0;
            case "gt" or ">" or "greaterthan": return Py.Compare(value, Arg(0), ">") > 0;
            case "ge" or ">=": return Py.Compare(value, Arg(0), ">=") >= 0;
            case "odd": return Py.ToLong(value) % 2 != 0;
            case "even": return Py.ToLong(value) % 2 == 0;
            case "divisibleby": return Py.ToLong(value) % Py.ToLong(Arg(0)) == 0;
            case "in": return Py.Contains(Arg(0), value);
            case "lower": return Py.Str(value) is var l && l == l.ToLowerInvariant();
            case "upper": return Py.Str(value) is var u && u == u.ToUpperInvariant();
            // Python identity: None/True/False are singletons and equal small values share one object; boxed
            // .NET values never do, so value types of the same type compare by value.
            case "sameas": return value is null ? Arg(0) is null : value is bool or long or double or string ? value.GetType() == Arg(0)?.GetType() && value.Equals(Arg(0)) : ReferenceEquals(value, Arg(0));
            default: throw new RenderError($"No test named '{name}'");
        }
    }
}
