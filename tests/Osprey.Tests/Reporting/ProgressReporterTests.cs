using Osprey.Reporting;

namespace Osprey.Tests.Reporting;

public sealed class ProgressReporterTests
{
    private static readonly Dictionary<string, string> NoFields = new();

    private static Dictionary<string, string> Loss(string v) => new() { ["loss"] = v };

    [Fact]
    public void NonInteractive_PrintsAtMostEveryTenSecondsAndAtTheEnd()
    {
        double now = 100;
        var w = new StringWriter { NewLine = "\n" };
        var r = new ProgressReporter(w, interactive: false, "Train", 10, () => now) { Width = 60 };
        r.Update(1, Loss("1")); // first update: printed
        now = 105;
        r.Update(2, Loss("2")); // throttled
        now = 109.99;
        r.Update(3, Loss("3")); // throttled
        now = 110;
        r.Update(4, Loss("4")); // 10 s since the last line: printed
        now = 111;
        r.Update(10, Loss("10")); // final step: always printed
        r.Finish();
        var lines = w.ToString().Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.Equal("", lines[3]);
        Assert.Contains("| 1/10 [00:00<00:00, loss=1]", lines[0], StringComparison.Ordinal);
        Assert.Contains("| 4/10 [00:10<00:15, loss=4]", lines[1], StringComparison.Ordinal);
        Assert.Contains("| 10/10 [00:11<00:00, loss=10]", lines[2], StringComparison.Ordinal);
        Assert.DoesNotContain('\r', w.ToString());
        Assert.All(lines[..3], l => Assert.Equal(60, l.Length));
    }

    [Fact]
    public void NonInteractive_FinishPrintsTheHeldBackState()
    {
        double now = 0;
        var w = new StringWriter { NewLine = "\n" };
        var r = new ProgressReporter(w, false, "Train", 100, () => now);
        r.Update(1, NoFields);
        now = 3;
        r.Update(7, NoFields);
        r.Finish();
        r.Finish();
        r.Update(8, NoFields); // ignored after Finish
        var lines = w.ToString().TrimEnd('\n').Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.Contains("| 7/100 [00:03<", lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public void Interactive_RewritesInPlaceAtMostEveryTenthOfASecond()
    {
        double now = 0;
        var w = new StringWriter { NewLine = "\n" };
        var r = new ProgressReporter(w, interactive: true, "Train", 1000, () => now) { Width = 70 };
        r.Update(1, Loss("1.000"));    // written
        now = 0.05;
        r.Update(2, Loss("0.9"));      // throttled
        now = 0.1;
        r.Update(3, Loss("0.8"));      // written
        now = 0.15;
        r.Update(4, Loss("0.7"));      // throttled
        Assert.Equal(2, w.ToString().Count(c => c == '\r'));
        Assert.DoesNotContain('\n', w.ToString());
        r.Finish();                    // writes step 4, then ends the line
        var text = w.ToString();
        Assert.Equal(3, text.Count(c => c == '\r'));
        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        var frames = text.TrimEnd('\n').Split('\r')[1..];
        Assert.Equal(3, frames.Length);
        Assert.All(frames, f => Assert.Equal(70, f.Length));
        Assert.Contains("| 4/1000 [", frames[2], StringComparison.Ordinal);
    }

    [Fact]
    public void Interactive_ShorterLineIsPaddedOverThePreviousOne()
    {
        double now = 0;
        var w = new StringWriter();
        var r = new ProgressReporter(w, true, "Eval", 0, () => now);
        r.Update(1, Loss("1.23456789"));
        now = 1;
        r.Update(2, Loss("1"));
        var frames = w.ToString().Split('\r')[1..];
        Assert.Equal(frames[0].Length, frames[1].Length);
        Assert.StartsWith("Eval: 2 [00:01, loss=1]", frames[1], StringComparison.Ordinal);
        Assert.EndsWith("         ", frames[1], StringComparison.Ordinal);
    }

    [Fact]
    public void Interactive_FinalStepIsNeverThrottled()
    {
        double now = 0;
        var w = new StringWriter();
        var r = new ProgressReporter(w, true, "Train", 3, () => now);
        r.Update(1, NoFields);
        r.Update(2, NoFields);
        r.Update(3, NoFields);
        Assert.Equal(2, w.ToString().Count(c => c == '\r'));
        Assert.Contains("3/3", w.ToString(), StringComparison.Ordinal);
        r.Finish();
        Assert.Equal(2, w.ToString().Count(c => c == '\r')); // nothing held back
    }

    [Fact]
    public void Finish_WithoutUpdates_WritesNothing()
    {
        var w = new StringWriter();
        new ProgressReporter(w, true, "Train", 3, () => 0).Finish();
        new ProgressReporter(w, false, "Train", 3, () => 0).Finish();
        Assert.Equal("", w.ToString());
    }

    [Fact]
    public void IsInteractive_OnlyForUnredirectedConsole()
    {
        Assert.False(ProgressReporter.IsInteractive(new StringWriter()));
        Assert.False(ProgressReporter.IsInteractive(TextWriter.Null));
        Assert.Equal(!Console.IsErrorRedirected, ProgressReporter.IsInteractive(Console.Error));
        Assert.Equal(!Console.IsOutputRedirected, ProgressReporter.IsInteractive(Console.Out));
    }

    [Fact]
    public void DefaultClock_Works()
    {
        var w = new StringWriter();
        var r = new ProgressReporter(w, false, "Train", 2);
        r.Update(2, NoFields);
        r.Finish();
        Assert.Contains("2/2 [00:00<00:00]", w.ToString(), StringComparison.Ordinal);
    }
}
