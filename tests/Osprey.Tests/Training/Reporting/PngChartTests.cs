using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Reporting;

public sealed class PngChartTests
{
    private static DecodedPng Draw(TempDirectory dir, IReadOnlyList<(double X, double Y)> points, string title = "train/loss")
    {
        var path = dir.File("chart.png");
        PngChart.WriteLineChart(path, title, points);
        return PngReader.Read(path);
    }

    [Fact]
    public void NoisyCurve_HasRawAndSmoothedLines()
    {
        using var dir = new TempDirectory();
        var rng = new Random(1);
        var points = Enumerable.Range(1, 200).Select(i => ((double)i, 3.0 / Math.Sqrt(i) + rng.NextDouble() * 0.3)).ToList();
        var png = Draw(dir, points);
        Assert.Equal(640, png.Width);
        Assert.Equal(400, png.Height);
        Assert.Equal(["IHDR", "IDAT", "IEND"], png.ChunkTypes);
        Assert.True(png.Find(PngChart.RawBlue).Count > 300);
        Assert.True(png.Find(PngChart.SmoothBlue).Count > 300);
        Assert.True(png.Find(PngChart.Black).Count > 500); // axes, ticks and labels
        Assert.True(png.NonWhite() < png.Width * png.Height / 2);
        Assert.Equal((255, 255, 255), png.At(0, 0));
        Assert.Equal((255, 255, 255), png.At(639, 399));
    }

    [Fact]
    public void Title_IsDrawnAtTheTop()
    {
        using var dir = new TempDirectory();
        var png = Draw(dir, [(1, 1), (2, 2)], "train/loss");
        int titleInk = 0;
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < png.Width; x++)
                if (png.At(x, y) == PngChart.Black) titleInk++;
        Assert.True(titleInk > 50, $"title pixels: {titleInk}");
    }

    [Fact]
    public void IncreasingLine_GoesUpToTheRight()
    {
        using var dir = new TempDirectory();
        var png = Draw(dir, [(0, 0), (10, 10)]);
        var raw = png.Find(PngChart.RawBlue);
        Assert.NotEmpty(raw);
        var leftmost = raw.MinBy(p => p.X);
        var rightmost = raw.MaxBy(p => p.X);
        Assert.True(rightmost.X - leftmost.X > 400, "the line spans the plot's width");
        Assert.True(leftmost.Y - rightmost.Y > 200, "the line rises (screen y falls)");
        Assert.Empty(png.Find(PngChart.SmoothBlue)); // 10 points or fewer: no smoothed series
    }

    [Fact]
    public void SmoothedSeries_OnlyAboveTenPoints()
    {
        using var dir = new TempDirectory();
        var ten = Enumerable.Range(0, 10).Select(i => ((double)i, (double)(i % 3))).ToList();
        Assert.Empty(Draw(dir, ten).Find(PngChart.SmoothBlue));
        var eleven = Enumerable.Range(0, 11).Select(i => ((double)i, (double)(i % 3))).ToList();
        Assert.NotEmpty(Draw(dir, eleven).Find(PngChart.SmoothBlue));
    }

    [Fact]
    public void ConstantSeries_RendersAHorizontalLine()
    {
        using var dir = new TempDirectory();
        var png = Draw(dir, Enumerable.Range(0, 50).Select(i => ((double)i, 2.5)).ToList());
        var smooth = png.Find(PngChart.SmoothBlue);
        Assert.NotEmpty(smooth);
        Assert.True(smooth.Select(p => p.Y).Distinct().Count() <= 2, "a flat line (two pixels thick)");
        int y = smooth.Min(p => p.Y);
        Assert.InRange(y, 150, 250); // centred vertically
    }

    [Fact]
    public void SinglePoint_RendersAMarker()
    {
        using var dir = new TempDirectory();
        var png = Draw(dir, [(100, 0.5)]);
        var raw = png.Find(PngChart.RawBlue);
        Assert.Equal(25, raw.Count); // one 5×5 marker
        Assert.InRange(raw.Average(p => p.X), 250, 450);
        Assert.InRange(raw.Average(p => p.Y), 150, 250);
    }

    [Fact]
    public void ZeroSinglePoint_Renders()
    {
        using var dir = new TempDirectory();
        Assert.Equal(25, Draw(dir, [(0, 0)]).Find(PngChart.RawBlue).Count);
    }

    [Fact]
    public void NonFinitePoints_AreSkipped()
    {
        using var dir = new TempDirectory();
        var points = new List<(double, double)> { (1, 1), (2, double.NaN), (3, double.PositiveInfinity), (4, 2), (double.NaN, 5), (5, double.NegativeInfinity), (6, 1.5) };
        var png = Draw(dir, points);
        var raw = png.Find(PngChart.RawBlue);
        Assert.NotEmpty(raw);
        Assert.Equal(640, png.Width);
    }

    [Fact]
    public void EmptyAndAllNaN_RenderWithoutSeries()
    {
        using var dir = new TempDirectory();
        foreach (var pts in new[] { new List<(double, double)>(), [(1, double.NaN), (2, double.NaN)] })
        {
            var png = Draw(dir, pts);
            Assert.Empty(png.Find(PngChart.RawBlue));
            Assert.True(png.NonWhite() > 100); // axes, title, "no data"
        }
    }

    [Fact]
    public void TinyAndHugeValues_Render()
    {
        using var dir = new TempDirectory();
        var lr = Enumerable.Range(0, 100).Select(i => ((double)i, 1e-5 * Math.Min(1, i / 10.0))).ToList();
        Assert.NotEmpty(Draw(dir, lr, "train/learning_rate").Find(PngChart.SmoothBlue));
        var huge = Enumerable.Range(0, 20).Select(i => ((double)i * 1e7, 1e12 + i)).ToList();
        Assert.NotEmpty(Draw(dir, huge).Find(PngChart.RawBlue));
    }

    [Fact]
    public void Write_ReplacesFileAndLeavesNoTemporaries()
    {
        using var dir = new TempDirectory();
        var path = dir.File("sub/chart.png");
        PngChart.WriteLineChart(path, "a", [(1, 1)]);
        var first = File.ReadAllBytes(path);
        PngChart.WriteLineChart(path, "a", [(1, 1), (2, 3)]);
        Assert.NotEqual(first, File.ReadAllBytes(path));
        Assert.Equal(new[] { "chart.png" }, Directory.GetFiles(dir.File("sub")).Select(Path.GetFileName));
    }

    [Fact]
    public void Ticks_AreRoundNumbersInsideTheRange()
    {
        Assert.Equal([0, 0.2, 0.4, 0.6000000000000001, 0.8, 1], PngChart.Ticks(0, 1));
        Assert.Equal([0, 20, 40, 60, 80, 100], PngChart.Ticks(-3, 104));
        Assert.Equal(["0.0", "0.2", "0.4"], PngChart.Labels([0, 0.2, 0.4]));
        Assert.Equal(["0", "20", "40"], PngChart.Labels([0, 20, 40]));
        Assert.Equal(["1E-5", "2E-5"], PngChart.Labels([1e-5, 2e-5]));
        Assert.Equal(["0", "5E-6", "1E-5"], PngChart.Labels([0, 5e-6, 1e-5]));
        Assert.Equal(["1.5E-5", "2E-5"], PngChart.Labels([1.5e-5, 2e-5]));
        Assert.Equal(["2E12", "3E12"], PngChart.Labels([2e12, 3e12]));
    }

    [Fact]
    public void Range_NeverEmpty()
    {
        Assert.Equal((4.5, 5.5), PngChart.Range([5, 5], 0.05));
        Assert.Equal((-1.0, 1.0), PngChart.Range([0], 0));
        Assert.Equal((0.0, 1.0), PngChart.Range([], 0));
        Assert.Equal((-0.5, 10.5), PngChart.Range([0, 10], 0.05));
    }

    [Fact]
    public void Smooth_IsDebiasedEma()
    {
        var s = PngChart.Smooth([4, 4, 4], 0.9);
        Assert.All(s, v => Assert.Equal(4, v, 12));
        var t = PngChart.Smooth([0, 10], 0.9);
        Assert.Equal(0, t[0], 12);
        Assert.Equal(1.0 / 0.19, t[1], 12); // (0.1·10) / (1 − 0.81)
    }

    [Fact]
    public void Font_HasGlyphsForLabelCharacters()
    {
        var digits = "0123456789".Select(c => string.Concat(BitmapFont.Glyph(c).Select(b => b ? '#' : '.'))).ToList();
        Assert.Equal(10, digits.Distinct().Count());
        foreach (var c in "abcxyzABCXYZ.-+_/:%()=,e ")
            Assert.Equal(35, BitmapFont.Glyph(c).Length);
        Assert.Equal(BitmapFont.Glyph('?'), BitmapFont.Glyph('§'));
        Assert.Equal(BitmapFont.Glyph('E'), BitmapFont.Glyph('e'));
        Assert.NotEqual(BitmapFont.Glyph('?'), BitmapFont.Glyph('_'));
        Assert.Equal(17, BitmapFont.Measure("abc"));
        Assert.Equal(34, BitmapFont.Measure("abc", 2));
    }
}
