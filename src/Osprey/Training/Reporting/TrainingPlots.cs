using System.Text.Json;
using ScottPlot;

namespace Osprey.Training.Reporting;

/// <summary>
/// Draws training curves to PNG files with ScottPlot: each series as its raw values, faint, and (above
/// <see cref="SmoothingMinPoints"/> points) a TensorBoard-style smoothed line on top (weight
/// <see cref="SmoothingWeight"/>); evaluation points as
/// markers; several runs overlaid in one chart. Short runs keep readable axes: every point gets a marker,
/// and a single step or a constant value gets a range around it. NaN and infinite points are skipped.
/// Files are written through a temporary file and a rename.
/// </summary>
public static class TrainingPlots
{
    /// <summary>Image width in pixels.</summary>
    public const int Width = 800;

    /// <summary>Image height in pixels.</summary>
    public const int Height = 500;

    /// <summary>The largest weight of the exponential moving average of the smoothed series.</summary>
    public const double MaxSmoothingWeight = 0.9;

    /// <summary>The smoothed line is drawn only when a series has more finite points than this.</summary>
    public const int SmoothingMinPoints = 10;

    /// <summary>Series with at most this many points get a marker at every point.</summary>
    public const int MarkerMaxPoints = 50;

    /// <summary>Opacity of the raw series under a smoothed line.</summary>
    public const double RawAlpha = 0.3;

    /// <summary>The line colours, one per run in order (Tableau 10, the palette of matplotlib and TensorBoard).</summary>
    public static IReadOnlyList<(byte R, byte G, byte B)> Palette { get; } =
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ];

    /// <summary>The colour of evaluation points in a single run's chart (the palette's red, apart from the blue train line).</summary>
    public static (byte R, byte G, byte B) EvalColor => Palette[3];

    private static readonly object FontGate = new();
    private static bool _fontRegistered;

    /// <summary>
    /// Writes one run's chart of <paramref name="points"/> (step, value) to <paramref name="path"/>, with
    /// <paramref name="evalPoints"/> (if any) as markers of <see cref="EvalColor"/> and a legend.
    /// </summary>
    public static void WriteCurve(string path, string title, IReadOnlyList<(double X, double Y)> points,
        IReadOnlyList<(double X, double Y)>? evalPoints = null, string xLabel = "step")
    {
        ArgumentNullException.ThrowIfNull(points);
        var plot = NewPlot(title, xLabel);
        var all = new List<(double X, double Y)>();
        all.AddRange(AddSeries(plot, points, Palette[0], evalPoints is { Count: > 0 } ? "train" : null));
        if (evalPoints is { Count: > 0 })
        {
            var eval = Finite(evalPoints);
            if (eval.Count > 0)
            {
                var s = plot.Add.ScatterLine(eval.Select(p => p.X).ToArray(), eval.Select(p => p.Y).ToArray(), ToColor(EvalColor));
                s.LineWidth = 1;
                s.MarkerShape = MarkerShape.FilledCircle;
                s.MarkerSize = 8;
                s.LegendText = "eval";
                all.AddRange(eval);
            }
        }
        Finish(plot, all, path);
    }

    /// <summary>
    /// Writes one chart of <paramref name="key"/> (a <c>logging.jsonl</c> key such as <c>loss</c> or
    /// <c>eval_loss</c>) over several runs to <paramref name="path"/>: each run folder's <c>logging.jsonl</c>
    /// is read and its series drawn in its own colour, labelled with the folder's name (or
    /// <paramref name="labels"/>). A run without the key is left out; none having it is an error.
    /// </summary>
    public static void WriteRuns(string path, string key, IReadOnlyList<string> runDirectories, IReadOnlyList<string>? labels = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(runDirectories);
        if (runDirectories.Count == 0) throw new ArgumentException("Give at least one run folder (one holding logging.jsonl).", nameof(runDirectories));
        if (labels is not null && labels.Count != runDirectories.Count)
            throw new ArgumentException($"{labels.Count} labels for {runDirectories.Count} run folders; give one label per run folder.", nameof(labels));
        var runs = new List<(string Label, List<(double X, double Y)> Points)>();
        var seenKeys = new SortedSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < runDirectories.Count; i++)
        {
            var jsonl = Path.Combine(runDirectories[i], TrainingLog.JsonlFileName);
            if (!File.Exists(jsonl))
                throw new FileNotFoundException($"{jsonl} does not exist; pass run folders written by osprey sft/pt/rlhf (the v<N>-<time> folders that hold logging.jsonl).", jsonl);
            var points = new List<(double X, double Y)>();
            foreach (var record in TrainingLog.ReadJsonl(jsonl))
            {
                foreach (var k in record.Keys) seenKeys.Add(k);
                if (record.TryGetValue(TrainingLog.StepKey, out var step) && step.ValueKind == JsonValueKind.Number
                    && record.TryGetValue(key, out var value) && value.ValueKind == JsonValueKind.Number)
                    points.Add((step.GetDouble(), value.GetDouble()));
            }
            var label = labels?[i] ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDirectories[i])));
            if (points.Count > 0) runs.Add((label, points));
        }
        if (runs.Count == 0)
        {
            seenKeys.Remove(TrainingLog.StepKey);
            throw new InvalidDataException($"No run logged \"{key}\" with a {TrainingLog.StepKey}; the logs hold: {string.Join(", ", seenKeys)}.");
        }
        var plot = NewPlot(TrainingLog.TagOf(key), "step");
        var all = new List<(double X, double Y)>();
        for (int i = 0; i < runs.Count; i++)
            all.AddRange(AddSeries(plot, runs[i].Points, Palette[i % Palette.Count], runs.Count > 1 ? runs[i].Label : null));
        Finish(plot, all, path);
    }

    /// <summary>
    /// The smoothing weight for a series of <paramref name="count"/> points: 1 − 10/<paramref name="count"/>,
    /// at most <see cref="MaxSmoothingWeight"/>, so that a short run's smoothed line does not lag far behind
    /// its points (30 points: 0.67, near TensorBoard's default 0.6; 100 points or more: 0.9).
    /// </summary>
    public static double SmoothingWeight(int count) => Math.Clamp(1 - 10.0 / Math.Max(count, 1), 0, MaxSmoothingWeight);

    /// <summary>TensorBoard's smoothing: an exponential moving average started at 0 and debiased by 1 − w^t.</summary>
    public static IReadOnlyList<double> Smooth(IReadOnlyList<double> ys, double weight)
    {
        ArgumentNullException.ThrowIfNull(ys);
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

    /// <summary>
    /// The axis range for <paramref name="values"/>: their span with a margin of 5% a side; a single value
    /// (or a span too small to show) gets ±10% of its size around it (±1 around 0), and no values (0, 1).
    /// </summary>
    public static (double Min, double Max) AxisRange(IEnumerable<double> values)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (var v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        if (min > max) return (0, 1);
        if (max - min <= Math.Max(Math.Abs(min), Math.Abs(max)) * 1e-9)
        {
            double pad = min == 0 ? 1 : Math.Abs(min) * 0.1;
            return (min - pad, max + pad);
        }
        double margin = (max - min) * 0.05;
        return (min - margin, max + margin);
    }

    private static Plot NewPlot(string title, string xLabel)
    {
        RegisterFont();
        var plot = new Plot();
        plot.Font.Set(EmbeddedFontResolver.FontName);
        plot.Title(title);
        plot.XLabel(xLabel);
        // Steps are whole numbers: a run of three steps gets ticks 1, 2, 3 rather than 1.1, 1.2, ...
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        return plot;
    }

    /// <summary>Adds a series (raw, and smoothed when long enough) and returns its finite points.</summary>
    private static List<(double X, double Y)> AddSeries(Plot plot, IReadOnlyList<(double X, double Y)> points, (byte R, byte G, byte B) rgb, string? label)
    {
        var data = Finite(points);
        if (data.Count == 0) return data;
        var xs = data.Select(p => p.X).ToArray();
        var ys = data.Select(p => p.Y).ToArray();
        var color = ToColor(rgb);
        bool smooth = data.Count > SmoothingMinPoints;
        var raw = plot.Add.ScatterLine(xs, ys, smooth ? color.WithAlpha(RawAlpha) : color);
        raw.LineWidth = smooth ? 1 : 2;
        if (data.Count <= MarkerMaxPoints)
        {
            raw.MarkerShape = MarkerShape.FilledCircle;
            raw.MarkerSize = 6;
        }
        if (smooth)
        {
            var line = plot.Add.ScatterLine(xs, Smooth(ys, SmoothingWeight(ys.Length)).ToArray(), color);
            line.LineWidth = 2;
            line.LegendText = label ?? "";
        }
        else
        {
            raw.LegendText = label ?? "";
        }
        return data;
    }

    private static void Finish(Plot plot, List<(double X, double Y)> all, string path)
    {
        if (all.Count == 0)
        {
            var text = plot.Add.Text("no data", 0.5, 0.5);
            text.LabelFontSize = 20;
            text.LabelAlignment = Alignment.MiddleCenter;
        }
        var (xMin, xMax) = AxisRange(all.Select(p => p.X));
        var (yMin, yMax) = AxisRange(all.Select(p => p.Y));
        if (all.Count == 0) (xMin, xMax, yMin, yMax) = (0, 1, 0, 1);
        plot.Axes.SetLimits(xMin, xMax, yMin, yMax);
        if (plot.GetPlottables().Any(p => p.LegendItems.Any(l => !string.IsNullOrEmpty(l.LabelText))))
        {
            plot.ShowLegend(Alignment.UpperRight);
        }
        var bytes = plot.GetImageBytes(Width, Height, ImageFormat.Png);
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

    private static List<(double X, double Y)> Finite(IReadOnlyList<(double X, double Y)> points) =>
        points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).OrderBy(p => p.X).ToList();

    private static Color ToColor((byte R, byte G, byte B) c) => new(c.R, c.G, c.B);

    /// <summary>Puts the embedded font first in ScottPlot's (process-wide) resolver list, once.</summary>
    private static void RegisterFont()
    {
        lock (FontGate)
        {
            if (_fontRegistered) return;
            Fonts.FontResolvers.Insert(0, new EmbeddedFontResolver());
            _fontRegistered = true;
        }
    }
}
