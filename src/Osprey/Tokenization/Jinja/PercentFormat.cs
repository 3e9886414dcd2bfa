using System.Globalization;
using System.Text;

namespace Osprey.Tokenization.Jinja;

/// <summary>Python's printf-style 'format' % args for the conversions templates use: s r d i f F e x X o c and %%.</summary>
internal static class PercentFormat
{
    public static string Apply(string format, object? args)
    {
        var positional = args is object?[] tuple ? tuple : [args];
        var mapping = args as Dictionary<object, object?>;
        var next = 0;
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }
            if (++i >= format.Length) throw new RenderError("incomplete format");
            object? value = null;
            var haveValue = false;
            if (format[i] == '(')
            {
                var close = format.IndexOf(')', i);
                if (close < 0 || mapping is null) throw new RenderError("format requires a mapping");
                var key = format[(i + 1)..close];
                value = mapping.TryGetValue(key, out var v) ? v : throw new RenderError($"'{key}'");
                haveValue = true;
                i = close + 1;
            }
            var flags = "";
            while (i < format.Length && "-+ 0#".Contains(format[i])) flags += format[i++];
            var width = ReadNumber(format, ref i);
            int? precision = null;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                precision = ReadNumber(format, ref i) ?? 0;
            }
            if (i >= format.Length) throw new RenderError("incomplete format");
            var conversion = format[i];
            if (conversion == '%')
            {
                sb.Append('%');
                continue;
            }
            if (!haveValue)
            {
                if (next >= positional.Length) throw new RenderError("not enough arguments for format string");
                value = positional[next++];
            }
            var text = Convert(conversion, value, precision, flags);
            if (width is { } w && text.Length < w)
            {
                var pad = w - text.Length;
                if (flags.Contains('-')) text += new string(' ', pad);
                else if (flags.Contains('0') && conversion is not ('s' or 'r' or 'c'))
                {
                    var signLength = text.StartsWith('-') || text.StartsWith('+') ? 1 : 0;
                    text = text[..signLength] + new string('0', pad) + text[signLength..];
                }
                else text = new string(' ', pad) + text;
            }
            sb.Append(text);
        }
        if (mapping is null && next < positional.Length && args is object?[])
        {
            throw new RenderError("not all arguments converted during string formatting");
        }
        return sb.ToString();
    }

    private static int? ReadNumber(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        return i > start ? int.Parse(s.AsSpan(start, i - start), CultureInfo.InvariantCulture) : null;
    }

    private static string Convert(char conversion, object? value, int? precision, string flags)
    {
        var inv = CultureInfo.InvariantCulture;
        string Signed(string digits, bool negative) =>
            negative ? "-" + digits : flags.Contains('+') ? "+" + digits : flags.Contains(' ') ? " " + digits : digits;
        switch (conversion)
        {
            case 's':
            {
                var s = Py.Str(value);
                return precision is { } p && p < s.Length ? s[..p] : s;
            }
            case 'r':
                return Py.Repr(value);
            case 'd' or 'i' or 'u':
            {
                var n = value is double d ? (long)Math.Truncate(d) : Py.ToLong(value);
                return Signed(Math.Abs(n).ToString(inv), n < 0);
            }
            case 'f' or 'F':
            {
                var d = Py.ToDouble(value);
                return Signed(Math.Abs(d).ToString("F" + (precision ?? 6), inv), d < 0 || double.IsNegative(d) && d == 0);
            }
            case 'e' or 'E':
            {
                var d = Py.ToDouble(value);
                var text = Math.Abs(d).ToString((conversion == 'e' ? "e" : "E") + (precision ?? 6), inv);
                // .NET writes three exponent digits (e+005); Python writes at least two (e+05).
                var e = text.IndexOfAny(['e', 'E']);
                var exponent = int.Parse(text[(e + 2)..], inv);
                text = text[..(e + 2)] + exponent.ToString("00", inv);
                return Signed(text, d < 0);
            }
            case 'x' or 'X' or 'o':
            {
                var n = Py.ToLong(value);
                var digits = conversion == 'o' ? System.Convert.ToString(Math.Abs(n), 8) : Math.Abs(n).ToString(conversion == 'x' ? "x" : "X", inv);
                if (flags.Contains('#')) digits = (conversion == 'o' ? "0o" : conversion == 'x' ? "0x" : "0X") + digits;
                return Signed(digits, n < 0);
            }
            case 'c':
                return value is string ch ? ch : char.ConvertFromUtf32((int)Py.ToLong(value));
            default:
                throw new RenderError($"unsupported format character '{conversion}'");
        }
    }
}
