using System.Globalization;

namespace Osprey.Training.Reporting;

/// <summary>
/// Renders simple line charts of training curves to PNG files (own rasterizer and encoder, no
/// dependencies): a 640×400 RGB image on white with a title, axes, grid lines and numeric tick labels;
/// the raw series is drawn in light blue and, above <see cref="SmoothingMinPoints"/> points, a smoothed
/// series (TensorBoard-style debiased exponential moving average, weight <see cref="SmoothingWeight"/>)
/// in dark blue. NaN and infinite points are skipped.
/// </summary>
public static class PngChart
{
    /// <summary>Image width in pixels.</summary>
    public const int Width = 640;

    /// <summary>Image height in pixels.</summary>
    public const int Height = 400;

    /// <summary>Weight of the exponential moving average of the smoothed series.</summary>
    public const double SmoothingWeight = 0.9;

    /// <summary>The smoothed series is drawn only when there are more finite points than this.</summary>
    public const int SmoothingMinPoints = 10;

    internal static readonly (byte R, byte G, byte B) White = (255, 255, 255);
    internal static readonly (byte R, byte G, byte B) Black = (0, 0, 0);
    internal static readonly (byte R, byte G, byte B) GridGray = (225, 225, 225);
    internal static readonly (byte R, byte G, byte B) RawBlue = (150, 195, 240);
    internal static readonly (byte R, byte G, byte B) SmoothBlue = (20, 60, 170);

    private const int Top = 36;
    private const int RightMargin = 20;
    private const int BottomMargin = 44;

    /// <summary>
    /// Writes a line chart of <paramref name="points"/> to <paramref name="path"/> (through a temporary
    /// file in the same folder, renamed into place; the folder is created if needed).
    /// </summary>
    public static void WriteLineChart(string path, string title, IReadOnlyList<(double X, double Y)> points, string xLabel = "step")
    {
        ArgumentNullException.ThrowIfNull(points);
        var bytes = PngEncoder.Encode(Render(title, points, xLabel));
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            File.WriteAllBytes(tmp, bytes);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Draws the chart onto a new canvas.</summary>
    internal static RgbCanvas Render(string title, IReadOnlyList<(double X, double Y)> points, string xLabel)
    {
        var canvas = new RgbCanvas(Width, Height);
        var data = points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).OrderBy(p => p.X).ToList();

        int titleScale = BitmapFont.Measure(title, 2) <= Width - 20 ? 2 : 1;
        canvas.Text((Width - BitmapFont.Measure(title, titleScale)) / 2, 10, title, Black, titleScale);

        var (xMin, xMax) = Range(data.Select(p => p.X), padFraction: 0);
        var (yMin, yMax) = Range(data.Select(p => p.Y), padFraction: 0.05);
        var xTicks = Ticks(xMin, xMax);
        var yTicks = Ticks(yMin, yMax);
        var yLabels = Labels(yTicks);
        var xLabels = Labels(xTicks);

        int left = 10 + (yLabels.Count == 0 ? 0 : yLabels.Max(l => BitmapFont.Measure(l))) + 8;
        int right = Width - RightMargin;
        int bottom = Height - BottomMargin;
        int Px(double x) => left + (int)Math.Round((x - xMin) / (xMax - xMin) * (right - left));
        int Py(double y) => bottom - (int)Math.Round((y - yMin) / (yMax - yMin) * (bottom - Top));

        for (int i = 0; i < yTicks.Count; i++)
        {
            int y = Py(yTicks[i]);
            canvas.Line(left + 1, y, right, y, GridGray);
            canvas.Line(left - 4, y, left, y, Black);
            canvas.Text(left - 8 - BitmapFont.Measure(yLabels[i]), y - BitmapFont.GlyphHeight / 2, yLabels[i], Black);
        }
        for (int i = 0; i < xTicks.Count; i++)
        {
            int x = Px(xTicks[i]);
            canvas.Line(x, Top, x, bottom - 1, GridGray);
            canvas.Line(x, bottom, x, bottom + 4, Black);
            canvas.Text(x - BitmapFont.Measure(xLabels[i]) / 2, bottom + 8, xLabels[i], Black);
        }
        canvas.Line(left, Top, left, bottom, Black);
        canvas.Line(left, bottom, right, bottom, Black);
        canvas.Text((left + right - BitmapFont.Measure(xLabel)) / 2, Height - 16, xLabel, Black);

        if (data.Count == 0)
        {
            const string none = "no data";
            canvas.Text((left + right - BitmapFont.Measure(none, 2)) / 2, (Top + bottom) / 2 - 7, none, Black, 2);
            return canvas;
        }

        for (int i = 1; i < data.Count; i++)
            canvas.Line(Px(data[i - 1].X), Py(data[i - 1].Y), Px(data[i].X), Py(data[i].Y), RawBlue);
        if (data.Count > SmoothingMinPoints)
        {
            var smooth = Smooth(data.Select(p => p.Y).ToList(), SmoothingWeight);
            for (int i = 1; i < data.Count; i++)
                canvas.Line(Px(data[i - 1].X), Py(smooth[i - 1]), Px(data[i].X), Py(smooth[i]), SmoothBlue, thickness: 2);
        }
        else
        {
            foreach (var p in data)
            {
                int x = Px(p.X), y = Py(p.Y);
                canvas.Fill(x - 2, y - 2, x + 2, y + 2, RawBlue);
            }
        }
        return canvas;
    }

    /// <summary>TensorBoard's smoothing: an exponential moving average started at 0 and debiased by 1 − w^t.</summary>
    internal static List<double> Smooth(IReadOnlyList<double> ys, double weight)
    {
        var result = new List<double>(ys.Count);
        double last = 0;
        for (int i = 0; i < ys.Count; i++)
        {
            last = last * weight + (1 - weight) * ys[i];
            double debias = 1 - Math.Pow(weight, i + 1);
            result.Add(debias > 0 ? last / debias : ys[i]);
        }
        return result;
    }

    /// <summary>The data's range, padded; a single value or empty data gets a non-empty range around it.</summary>
    internal static (double Min, double Max) Range(IEnumerable<double> values, double padFraction)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (var v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        if (min > max) return (0, 1);
        if (max - min <= Math.Abs(max) * 1e-12 || max - min == 0)
        {
            double pad = min == 0 ? 1 : Math.Abs(min) * 0.1;
            return (min - pad, max + pad);
        }
        double span = max - min;
        return (min - span * padFraction, max + span * padFraction);
    }

    /// <summary>Round tick values (1, 2 or 5 times a power of ten apart, about five of them) within [min, max].</summary>
    internal static List<double> Ticks(double min, double max)
    {
        double step = TickStep(min, max);
        var ticks = new List<double>();
        double first = Math.Ceiling(min / step - 1e-9) * step;
        for (int i = 0; i < 50; i++)
        {
            double v = first + i * step;
            if (v > max + step * 1e-9) break;
            ticks.Add(Math.Abs(v) < step * 1e-9 ? 0 : v);
        }
        return ticks;
    }

    private static double TickStep(double min, double max)
    {
        double raw = (max - min) / 5;
        double mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double norm = raw / mag;
        double nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
        return nice * mag;
    }

    /// <summary>Labels for evenly spaced ticks: fixed-point with as many decimals as the spacing needs, or scientific.</summary>
    internal static List<string> Labels(IReadOnlyList<double> ticks)
    {
        if (ticks.Count == 0) return [];
        double step = ticks.Count > 1 ? ticks[1] - ticks[0] : Math.Max(Math.Abs(ticks[0]), 1);
        double maxAbs = ticks.Max(Math.Abs);
        int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9));
        string format;
        if (maxAbs < 1e6 && decimals <= 4)
        {
            format = "F" + decimals.ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            int digits = maxAbs == 0 ? 0 : Math.Clamp((int)Math.Floor(Math.Log10(maxAbs)) - (int)Math.Floor(Math.Log10(step) + 1e-9), 0, 6);
            format = "0." + new string('#', digits) + "E-0";
        }
        return ticks.Select(t => t == 0 && format[0] != 'F' ? "0" : t.ToString(format, CultureInfo.InvariantCulture)).ToList();
    }
}
