using ScottPlot;
using SkiaSharp;

namespace Osprey.Evaluation;

/// <summary>
/// report.png: one bar per subset (and one per set overall) of each set's first metric (acc, or bleu-1 for
/// open answers), drawn with ScottPlot in the DejaVu Sans font embedded in the library (a bare machine has none).
/// </summary>
public static class EvalChart
{
    const string FontName = "Osprey Evaluation DejaVu Sans";
    static readonly Lock Gate = new();
    static bool _registered;

    /// <summary>Draws <paramref name="report"/> to <paramref name="path"/> (temporary file, then rename).</summary>
    public static void Write(string path, EvalReport report)
    {
        Register();
        var bars = report.Rows
            .GroupBy(r => r.Dataset)
            .SelectMany(g => g.Where(r => r.Metric == g.First().Metric && r.Level != "category"))
            .ToList();
        var plot = new Plot();
        plot.Font.Set(FontName);
        plot.Title($"{Path.GetFileName(report.Model.TrimEnd('/'))}: evaluation");
        plot.YLabel("score");
        var ticks = new List<Tick>();
        for (var i = 0; i < bars.Count; i++)
        {
            var bar = plot.Add.Bar(i, bars[i].Score);
            bar.Color = bars[i].Level == "overall" ? Colors.DarkOrange : Colors.SteelBlue;
            ticks.Add(new Tick(i, $"{bars[i].Dataset}/{(bars[i].Level == "overall" ? "OVERALL" : bars[i].Group)} ({bars[i].Metric})"));
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        // Room below the plot for the slanted subset names.
        plot.Axes.Bottom.MinimumSize = 180;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.SetLimits(-0.6, Math.Max(bars.Count, 1) - 0.4, 0, 1.05);
        var bytes = plot.GetImageBytes(Math.Max(480, 80 * bars.Count + 200), 560, ImageFormat.Png);
        var tmp = path + ".tmp";
        File.WriteAllBytes(tmp, bytes);
        File.Move(tmp, path, overwrite: true);
    }

    static void Register()
    {
        lock (Gate)
        {
            if (_registered) return;
            Fonts.FontResolvers.Insert(0, new EmbeddedFont());
            _registered = true;
        }
    }

    /// <summary>The font the library embeds for its plots, under this chart's own family name.</summary>
    sealed class EmbeddedFont : IFontResolver
    {
        // The resource Osprey.csproj embeds (Training/Reporting/Fonts/DejaVuSans.ttf), read by name.
        const string Resource = "Osprey.Training.Reporting.DejaVuSans.ttf";
        static readonly Lazy<SKTypeface> Typeface = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

        public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing spacing) => fontName == FontName ? Typeface.Value : null;

        public SKTypeface? CreateTypeface(string fontName, bool bold, bool italic) => fontName == FontName ? Typeface.Value : null;

        static SKTypeface Load()
        {
            using var stream = typeof(EvalChart).Assembly.GetManifestResourceStream(Resource)
                ?? throw new InvalidOperationException($"The embedded font {Resource} is missing from {typeof(EvalChart).Assembly.Location}; rebuild Osprey.");
            var bytes = new MemoryStream();
            stream.CopyTo(bytes);
            return SKTypeface.FromData(SKData.CreateCopy(bytes.ToArray())) ?? throw new InvalidOperationException($"Skia could not read the embedded font {Resource}.");
        }
    }
}
