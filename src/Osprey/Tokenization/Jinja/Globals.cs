using System.Globalization;

namespace Osprey.Tokenization.Jinja;

/// <summary>The functions a chat template can call: Jinja2's range/dict/namespace plus transformers' two globals.</summary>
internal static class Globals
{
    public static IEnumerable<(string Name, BuiltinFunction Function)> Create()
    {
        yield return ("raise_exception", new BuiltinFunction("raise_exception", (_, args, kwargs) =>
            throw new TemplateRaised(Py.Str(args.Count > 0 ? args[0] : kwargs.GetValueOrDefault("message")))));
        yield return ("strftime_now", new BuiltinFunction("strftime_now", (_, args, _) =>
            Strftime.Format(DateTime.Now, Py.Str(args.Count > 0 ? args[0] : ""))));
        yield return ("range", new BuiltinFunction("range", (_, args, _) => Range(args)));
        yield return ("dict", new BuiltinFunction("dict", (_, args, kwargs) =>
        {
            var d = Py.NewDict();
            if (args.Count > 0 && args[0] is Dictionary<object, object?> src)
            {
                foreach (var (k, v) in src) d[k] = v;
            }
            foreach (var (k, v) in kwargs) d[k] = v;
            return d;
        }));
        yield return ("namespace", new BuiltinFunction("namespace", (_, args, kwargs) =>
        {
            var ns = new Namespace();
            if (args.Count > 0 && args[0] is Dictionary<object, object?> src)
            {
                foreach (var (k, v) in src) ns.Attributes[Py.Str(k)] = v;
            }
            foreach (var (k, v) in kwargs) ns.Attributes[k] = v;
            return ns;
        }));
    }

    private static List<object?> Range(List<object?> args)
    {
        long start = 0, stop, step = 1;
        if (args.Count == 1) stop = Py.ToLong(args[0]);
        else if (args.Count >= 2)
        {
            start = Py.ToLong(args[0]);
            stop = Py.ToLong(args[1]);
            if (args.Count > 2) step = Py.ToLong(args[2]);
        }
        else throw new RenderError("range expected at least 1 argument, got 0");
        if (step == 0) throw new RenderError("range() arg 3 must not be zero");
        var result = new List<object?>();
        for (var i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            result.Add(i);
            if (result.Count > 100_000) throw new RenderError("range too big");
        }
        return result;
    }
}

/// <summary>The C strftime directives templates use for dates (Llama 3.x prints "26 Jul 2024").</summary>
internal static class Strftime
{
    public static string Format(DateTime t, string format)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new System.Text.StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            var c = format[++i];
            sb.Append(c switch
            {
                'Y' => t.Year.ToString("0000", inv),
                'y' => (t.Year % 100).ToString("00", inv),
                'm' => t.Month.ToString("00", inv),
                'd' => t.Day.ToString("00", inv),
                'e' => t.Day.ToString(inv).PadLeft(2),
                'H' => t.Hour.ToString("00", inv),
                'I' => ((t.Hour + 11) % 12 + 1).ToString("00", inv),
                'M' => t.Minute.ToString("00", inv),
                'S' => t.Second.ToString("00", inv),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'b' or 'h' => t.ToString("MMM", inv),
                'B' => t.ToString("MMMM", inv),
                'a' => t.ToString("ddd", inv),
                'A' => t.ToString("dddd", inv),
                'j' => t.DayOfYear.ToString("000", inv),
                '%' => "%",
                _ => "%" + c,
            });
        }
        return sb.ToString();
    }
}
