using Osprey.Reporting;

namespace Osprey.Tests.Reporting;

public sealed class ProgressLineTests
{
    private static readonly Dictionary<string, string> Fields = new()
    {
        ["loss"] = "1.234",
        ["_speed"] = "3.2k tok/s",
        ["mem"] = "1.2GiB",
    };

    [Fact]
    public void Format_TqdmStyle()
    {
        const string expected = "Train:  45%|████▌     | 45/100 [00:12<00:14, loss=1.234, 3.2k tok/s, mem=1.2GiB]";
        Assert.Equal(expected, ProgressLine.Format("Train", 45, 100, 12.0, Fields, expected.Length));
    }

    [Fact]
    public void Format_FillsTheWidthWithTheBar()
    {
        var line = ProgressLine.Format("Train", 45, 100, 12.0, Fields, 120);
        Assert.Equal(120, line.Length);
        Assert.StartsWith("Train:  45%|", line, StringComparison.Ordinal);
        Assert.EndsWith("| 45/100 [00:12<00:14, loss=1.234, 3.2k tok/s, mem=1.2GiB]", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Format_NarrowWidth_KeepsMinimumBar()
    {
        var line = ProgressLine.Format("Train", 1, 2, 1, Fields, 20);
        Assert.Equal("Train:  50%|█████     | 1/2 [00:01<00:01, loss=1.234, 3.2k tok/s, mem=1.2GiB]", line);
    }

    [Fact]
    public void Format_StepZero_HasUnknownEta()
    {
        const string expected = "Eval:   0%|          | 0/100 [00:00<?]";
        Assert.Equal(expected, ProgressLine.Format("Eval", 0, 100, 0, new Dictionary<string, string>(), expected.Length));
    }

    [Fact]
    public void Format_Complete()
    {
        const string expected = "Train: 100%|██████████| 8/8 [01:05<00:00, loss=0.5]";
        Assert.Equal(expected, ProgressLine.Format("Train", 8, 8, 65.9, new Dictionary<string, string> { ["loss"] = "0.5" }, expected.Length));
    }

    [Fact]
    public void Format_BeyondTotal_ClampsBarAndPercent()
    {
        var line = ProgressLine.Format("Train", 12, 10, 10, new Dictionary<string, string>(), 40);
        Assert.StartsWith("Train: 100%|██████", line, StringComparison.Ordinal);
        Assert.EndsWith("| 12/10 [00:10<00:00]", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Format_UnknownTotal()
    {
        Assert.Equal("Eval: 7 [00:03, loss=2]", ProgressLine.Format("Eval", 7, 0, 3.5, new Dictionary<string, string> { ["loss"] = "2" }));
        Assert.Equal("Eval: 0 [00:00]", ProgressLine.Format("Eval", 0, -1, 0, new Dictionary<string, string>()));
    }

    [Fact]
    public void Format_Hours()
    {
        var line = ProgressLine.Format("Train", 1, 3, 3723, new Dictionary<string, string>(), 0);
        Assert.EndsWith("| 1/3 [1:02:03<2:04:06]", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, "00:00")]
    [InlineData(59.99, "00:59")]
    [InlineData(61, "01:01")]
    [InlineData(3599, "59:59")]
    [InlineData(3600, "1:00:00")]
    [InlineData(3723, "1:02:03")]
    [InlineData(36000 * 3 + 5, "30:00:05")]
    [InlineData(-1, "?")]
    [InlineData(double.NaN, "?")]
    [InlineData(double.PositiveInfinity, "?")]
    public void Interval_Formats(double seconds, string expected) => Assert.Equal(expected, ProgressLine.Interval(seconds));

    [Theory]
    [InlineData(0.0, 4, "    ")]
    [InlineData(1.0, 4, "████")]
    [InlineData(0.5, 3, "█▌ ")]
    [InlineData(0.125, 1, "▏")]
    [InlineData(0.875, 1, "▉")]
    [InlineData(0.0624, 2, "  ")]
    [InlineData(0.0625, 2, "▏ ")]
    [InlineData(-1.0, 2, "  ")]
    [InlineData(2.0, 2, "██")]
    public void Bar_UsesEighthBlocks(double fraction, int width, string expected) => Assert.Equal(expected, ProgressLine.Bar(fraction, width));
}
