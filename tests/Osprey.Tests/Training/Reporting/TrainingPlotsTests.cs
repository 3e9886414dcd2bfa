using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Reporting;

/// <summary>
/// The charts are decoded by python3's zlib/struct (PythonPngDecoder), not by the library that drew them;
/// the pixel checks look for the documented colours where the data must put them.
/// </summary>
public sealed class TrainingPlotsTests
{
    private static readonly (byte R, byte G, byte B) Blue = TrainingPlots.Palette[0];

    /// <summary>Blue drawn at <see cref="TrainingPlots.RawAlpha"/> over white.</summary>
    private static readonly (byte R, byte G, byte B) FaintBlue = Blend(Blue, TrainingPlots.RawAlpha);

    private static (byte, byte, byte) Blend((byte R, byte G, byte B) c, double alpha) =>
        ((byte)Math.Round(c.R * alpha + 255 * (1 - alpha)), (byte)Math.Round(c.G * alpha + 255 * (1 - alpha)), (byte)Math.Round(c.B * alpha + 255 * (1 - alpha)));

    private static List<(double X, double Y)> ZigZag(int n) => Enumerable.Range(0, n).Select(i => ((double)i, (double)(i % 3))).ToList();

    [Fact]
    public void Charts_DecodeAndShowCurvesTextAndMarkers()
    {
        using var dir = new TempDirectory();
        var rng = new Random(1);
        var noisy = Enumerable.Range(1, 200).Select(i => ((double)i, 3.0 / Math.Sqrt(i) + rng.NextDouble() * 0.3)).ToList();
        TrainingPlots.WriteCurve(dir.File("noisy.png"), "train/loss", noisy);
        TrainingPlots.WriteCurve(dir.File("rising.png"), "train/loss", [(0, 0), (10, 10)]);
        TrainingPlots.WriteCurve(dir.File("ten.png"), "train/loss", ZigZag(10));
        TrainingPlots.WriteCurve(dir.File("forty.png"), "train/loss", ZigZag(40));
        TrainingPlots.WriteCurve(dir.File("single.png"), "eval/loss", [(100, 3.0)]);
        TrainingPlots.WriteCurve(dir.File("nonfinite.png"), "train/loss", [(1, 1), (2, double.NaN), (3, double.PositiveInfinity), (4, 2), (double.NaN, 5), (6, 1.5)]);
        TrainingPlots.WriteCurve(dir.File("empty.png"), "train/loss", []);
        TrainingPlots.WriteCurve(dir.File("eval.png"), "train/loss", noisy, [(50, 1.0), (100, 0.8), (150, 0.7), (200, 0.6)]);
        var names = new[] { "noisy", "rising", "ten", "forty", "single", "nonfinite", "empty", "eval" };
        var png = PythonPngDecoder.DecodeAll(names.Select(n => dir.File(n + ".png")).ToList())
            .Select((p, i) => (names[i], p)).ToDictionary();

        var n = png["noisy"];
        Assert.Equal((TrainingPlots.Width, TrainingPlots.Height), (n.Width, n.Height));
        Assert.Equal("IHDR", n.ChunkTypes[0]);
        Assert.True(n.Near(Blue).Count > 300, "the smoothed line");
        Assert.True(n.Near(FaintBlue).Count > 300, "the faint raw line");
        Assert.True(n.DarkInRows(0, n.Height / 10) > 50, "the title's text");
        Assert.True(n.DarkInRows(n.Height * 9 / 10, n.Height) > 50, "the x axis's label");
        Assert.True(n.NonWhite() < n.Width * n.Height / 2);
        Assert.Equal((255, 255, 255), n.At(0, 0));
        Assert.Equal((255, 255, 255), n.At(n.Width - 1, n.Height - 1));

        var rising = png["rising"].Near(Blue);
        Assert.NotEmpty(rising);
        var left = rising.MinBy(p => p.X);
        var right = rising.MaxBy(p => p.X);
        Assert.True(right.X - left.X > TrainingPlots.Width / 2, "the line spans the plot's width");
        Assert.True(left.Y - right.Y > TrainingPlots.Height / 3, "the line rises (screen y falls)");

        // Ten points: the raw zigzag itself is the solid line, reaching the 0 and 2 extremes. Forty: the
        // smoothed line is the solid one, and it stays well inside them (the raw line is faint).
        int Extent(DecodedPng p) { var b = p.Near(Blue, 6); return b.Max(q => q.Y) - b.Min(q => q.Y); }
        Assert.True(png["forty"].Near(FaintBlue, 3).Count > 5 * png["ten"].Near(FaintBlue, 3).Count, "only the smoothed chart has a faint line");
        Assert.True(Extent(png["forty"]) < Extent(png["ten"]) * 0.7, $"smoothed extent {Extent(png["forty"])} vs raw {Extent(png["ten"])}");

        var marker = png["single"].Near(Blue);
        Assert.True(marker.Count >= 15, $"one marker: {marker.Count} pixels");
        Assert.InRange(marker.Average(p => p.X), TrainingPlots.Width * 0.3, TrainingPlots.Width * 0.7);
        Assert.InRange(marker.Average(p => p.Y), TrainingPlots.Height * 0.25, TrainingPlots.Height * 0.75);

        Assert.NotEmpty(png["nonfinite"].Near(Blue));
        Assert.Empty(png["empty"].Near(Blue));
        Assert.True(png["empty"].DarkInRows(TrainingPlots.Height * 2 / 5, TrainingPlots.Height * 3 / 5) > 50, "\"no data\" in the middle");

        var eval = png["eval"].Near(TrainingPlots.EvalColor);
        Assert.True(eval.Count > 4 * 20, $"four eval markers: {eval.Count} pixels");
        Assert.Empty(png["noisy"].Near(TrainingPlots.EvalColor));
    }

    [Fact]
    public void WriteRuns_OverlaysEachRunInItsColour()
    {
        using var dir = new TempDirectory();
        // Hand-written logging.jsonl lines in ms-swift's shape, not TrainingLog's output.
        Directory.CreateDirectory(dir.File("v0-a"));
        Directory.CreateDirectory(dir.File("v1-b"));
        File.WriteAllLines(dir.File("v0-a/logging.jsonl"), Enumerable.Range(1, 30).Select(i => $"{{\"loss\": {3.0 - i * 0.05}, \"global_step\": {i}}}"));
        File.WriteAllLines(dir.File("v1-b/logging.jsonl"), Enumerable.Range(1, 30).Select(i => $"{{\"loss\": {3.0 - i * 0.08}, \"global_step\": {i}, \"eval_loss\": 2.0}}"));
        var path = dir.File("loss.png");
        TrainingPlots.WriteRuns(path, "loss", [dir.File("v0-a"), dir.File("v1-b")]);
        var png = PythonPngDecoder.Decode(path);
        var first = png.Near(TrainingPlots.Palette[0]);
        var second = png.Near(TrainingPlots.Palette[1]);
        Assert.True(first.Count > 200 && second.Count > 200, $"{first.Count} and {second.Count} pixels");
        // The second run falls faster, so at the right end of the chart its line is below the first's.
        int rightEdge = Math.Max(first.Max(p => p.X), second.Max(p => p.X));
        double FirstY(List<(int X, int Y)> ps) => ps.Where(p => p.X > rightEdge - 20).Average(p => p.Y);
        Assert.True(FirstY(second) > FirstY(first) + 20);

        var missing = Assert.Throws<FileNotFoundException>(() => TrainingPlots.WriteRuns(path, "loss", [dir.File("v0-a"), dir.Path]));
        Assert.Contains(Path.Combine(dir.Path, "logging.jsonl"), missing.Message, StringComparison.Ordinal);
        var noKey = Assert.Throws<InvalidDataException>(() => TrainingPlots.WriteRuns(path, "grad_norm", [dir.File("v0-a")]));
        Assert.Contains("\"grad_norm\"", noKey.Message, StringComparison.Ordinal);
        Assert.Contains("loss", noKey.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_ReplacesFileAndLeavesNoTemporaries()
    {
        using var dir = new TempDirectory();
        var path = dir.File("sub/chart.png");
        TrainingPlots.WriteCurve(path, "a", [(1, 1)]);
        var first = File.ReadAllBytes(path);
        TrainingPlots.WriteCurve(path, "a", [(1, 1), (2, 3)]);
        Assert.NotEqual(first, File.ReadAllBytes(path));
        Assert.Equal(new[] { "chart.png" }, Directory.GetFiles(dir.File("sub")).Select(Path.GetFileName));
    }

    [Fact]
    public void AxisRange_NeverEmpty()
    {
        Assert.Equal((2.7, 3.3), Round(TrainingPlots.AxisRange([3.0])));
        Assert.Equal((-1.0, 1.0), TrainingPlots.AxisRange([0, 0]));
        Assert.Equal((0.0, 1.0), TrainingPlots.AxisRange([]));
        Assert.Equal((-0.5, 10.5), TrainingPlots.AxisRange([0, 10]));
        static (double, double) Round((double A, double B) r) => (Math.Round(r.A, 12), Math.Round(r.B, 12));
    }

    [Fact]
    public void SmoothingWeight_GrowsWithTheRunUpToTheCap()
    {
        Assert.Equal(1 - 10.0 / 30, TrainingPlots.SmoothingWeight(30), 12);
        Assert.Equal(0.9, TrainingPlots.SmoothingWeight(100), 12);
        Assert.Equal(0.9, TrainingPlots.SmoothingWeight(5000), 12);
        Assert.Equal(0, TrainingPlots.SmoothingWeight(5), 12);
    }

    [Fact]
    public void Smooth_IsDebiasedEma()
    {
        Assert.All(TrainingPlots.Smooth([4, 4, 4], 0.9), v => Assert.Equal(4, v, 12));
        var t = TrainingPlots.Smooth([0, 10], 0.9);
        Assert.Equal(0, t[0], 12);
        Assert.Equal(1.0 / 0.19, t[1], 12); // (0.1·10) / (1 − 0.81)
    }
}
