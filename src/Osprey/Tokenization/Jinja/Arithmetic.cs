using System.Text;

namespace Osprey.Tokenization.Jinja;

/// <summary>Python's binary operators on template values.</summary>
internal static class Arithmetic
{
    public static object? Binary(string op, object? a, object? b)
    {
        if (a is Undefined ua) throw new RenderError(ua.Hint);
        if (b is Undefined ub) throw new RenderError(ub.Hint);
        if (Py.IsNumber(a) && Py.IsNumber(b)) return Numeric(op, a, b);
        switch (op)
        {
            case "%" when a is string format:
                return PercentFormat.Apply(format, b);
            case "+" when a is string s && b is string t:
                return s + t;
            case "+" when a is List<object?> l && b is List<object?> m:
                return l.Concat(m).ToList();
            case "+" when a is object?[] x && b is object?[] y:
                return x.Concat(y).ToArray();
            case "*" when Py.IsInt(b) && a is string or List<object?>:
                return Repeat(a, Py.ToLong(b));
            case "*" when Py.IsInt(a) && b is string or List<object?>:
                return Repeat(b, Py.ToLong(a));
        }
        var symbol = op;
        throw new RenderError($"unsupported operand type(s) for {symbol}: '{Py.TypeName(a)}' and '{Py.TypeName(b)}'");
    }

    private static object Repeat(object? value, long times)
    {
        if (value is string s)
        {
            var sb = new StringBuilder();
            for (var i = 0; i < times; i++) sb.Append(s);
            return sb.ToString();
        }
        var list = (List<object?>)value!;
        var result = new List<object?>();
        for (var i = 0; i < times; i++) result.AddRange(list);
        return result;
    }

    private static object Numeric(string op, object? a, object? b)
    {
        if (Py.IsInt(a) && Py.IsInt(b))
        {
            long x = Py.ToLong(a), y = Py.ToLong(b);
            // Python integers are unbounded; 64-bit overflow is reported rather than wrapped.
            switch (op)
            {
                case "+": return checked(x + y);
                case "-": return checked(x - y);
                case "*": return checked(x * y);
                case "/":
                    if (y == 0) throw new RenderError("division by zero");
                    return (double)x / y;
                case "//":
                    if (y == 0) throw new RenderError("integer division or modulo by zero");
                    return FloorDiv(x, y);
                case "%":
                    if (y == 0) throw new RenderError("integer division or modulo by zero");
                    return x - FloorDiv(x, y) * y;
                case "**":
                    if (y >= 0)
                    {
                        long r = 1;
                        for (var i = 0; i < y; i++) r = checked(r * x);
                        return r;
                    }
                    return Math.Pow(x, y);
            }
        }
        double p = Py.ToDouble(a), q = Py.ToDouble(b);
        switch (op)
        {
            case "+": return p + q;
            case "-": return p - q;
            case "*": return p * q;
            case "/":
                if (q == 0) throw new RenderError("float division by zero");
                return p / q;
            case "//":
                if (q == 0) throw new RenderError("float floor division by zero");
                return Math.Floor(p / q);
            case "%":
                if (q == 0) throw new RenderError("float modulo");
                var m = p % q;
                if (m != 0 && (m < 0) != (q < 0)) m += q;
                return m;
            case "**": return Math.Pow(p, q);
        }
        throw new RenderError($"unknown operator {op}");
    }

    private static long FloorDiv(long x, long y)
    {
        var q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
        return q;
    }
}
