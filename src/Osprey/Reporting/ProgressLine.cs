using System.Globalization;
using System.Text;

namespace Osprey.Reporting;

/// <summary>
/// Formats tqdm-style progress lines, e.g.
/// <c>Train:  45%|████▌     | 45/100 [00:12&lt;00:15, loss=1.234, 3.2k tok/s, mem=1.2GiB]</c>.
/// Pure formatting; see <see cref="ProgressReporter"/> for writing them.
/// </summary>
public static class ProgressLine
{
    /// <summary>Bar width used when the rest of the line leaves less room than this.</summary>
    public const int MinBarWidth = 10;

    private const string Partials = " ▏▎▍▌▋▊▉";

    /// <summary>
    /// One progress line of at most about <paramref name="width"/> characters (the bar takes what the
    /// rest leaves, at least <see cref="MinBarWidth"/>). The ETA is elapsed / step × remaining steps
    /// (<c>?</c> at step 0). <paramref name="fields"/> follow in their order as <c>key=value</c>; an entry
    /// whose key starts with <c>_</c> shows its value alone (e.g. <c>{"_speed", "3.2k tok/s"}</c>). With
    /// <paramref name="total"/> ≤ 0 (unknown) there is no percentage, bar or ETA:
    /// <c>Train: 45 [00:12, loss=1.234]</c>.
    /// </summary>
    public static string Format(string phase, long step, long total, double elapsedSeconds, IReadOnlyDictionary<string, string> fields, int width = 100)
    {
        ArgumentNullException.ThrowIfNull(fields);
        var tail = new StringBuilder();
        foreach (var (key, value) in fields)
        {
            tail.Append(", ");
            if (key.StartsWith('_')) tail.Append(value);
            else tail.Append(key).Append('=').Append(value);
        }
        string elapsed = Interval(elapsedSeconds);
        if (total <= 0)
            return $"{phase}: {step} [{elapsed}{tail}]";

        long shown = Math.Clamp(step, 0, total);
        double fraction = (double)shown / total;
        string eta = step <= 0 || !double.IsFinite(elapsedSeconds) ? "?" : Interval(elapsedSeconds / step * Math.Max(0, total - step));
        string percent = ((int)Math.Floor(fraction * 100)).ToString(CultureInfo.InvariantCulture).PadLeft(3);
        string prefix = $"{phase}: {percent}%|";
        string suffix = $"| {step}/{total} [{elapsed}<{eta}{tail}]";
        int barWidth = Math.Max(MinBarWidth, width - prefix.Length - suffix.Length);
        return prefix + Bar(fraction, barWidth) + suffix;
    }

    /// <summary>A bar of <paramref name="width"/> cells filled to <paramref name="fraction"/> with eighth-block resolution.</summary>
    public static string Bar(double fraction, int width)
    {
        fraction = double.IsFinite(fraction) ? Math.Clamp(fraction, 0, 1) : 0;
        long eighths = (long)Math.Floor(fraction * width * 8);
        int full = (int)(eighths / 8);
        int part = (int)(eighths % 8);
        var sb = new StringBuilder(width);
        sb.Append('█', full);
        if (full < width)
        {
            sb.Append(Partials[part]);
            sb.Append(' ', width - full - 1);
        }
        return sb.ToString();
    }

    /// <summary>tqdm's interval format: <c>mm:ss</c>, or <c>h:mm:ss</c> from one hour on; negative or non-finite is <c>?</c>.</summary>
    public static string Interval(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0) return "?";
        long s = (long)Math.Floor(seconds);
        long h = s / 3600, m = s / 60 % 60, sec = s % 60;
        return h > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{h}:{m:00}:{sec:00}")
            : string.Create(CultureInfo.InvariantCulture, $"{m:00}:{sec:00}");
    }
}
