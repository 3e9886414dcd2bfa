using Osprey.Reporting;

namespace Osprey.Tests.Reporting;

/// <summary>
/// Messages written while a progress bar is drawn in place start on a line of their own (issue 16: after the final
/// bar on a terminal, "osprey: saved …" used to continue the bar's line).
/// </summary>
public sealed class ProgressAwareWriterTests
{
    [Fact]
    public void AMessageAfterTheFinalBarStartsOnANewLineAndTheBarRedrawsBelowIt()
    {
        var w = new StringWriter { NewLine = "\n" };
        var bar = new ProgressReporter(w, interactive: true, "Train", 2, () => 0) { Width = 40 };
        var log = new ProgressAwareWriter(w, () => bar) { NewLine = "\n" };
        bar.Update(1, new Dictionary<string, string>());
        log.Write("osprey: eval ");        // a message written in two parts ends the bar's line once
        log.WriteLine("loss 1.5");
        bar.Update(2, new Dictionary<string, string>());
        log.WriteLine("osprey: saved checkpoint-2");
        bar.Finish();                      // the line is already ended: no blank line
        log.WriteLine("run: out");

        var lines = w.ToString().Split('\n');
        // Hand-written expectation: each bar is "\r" + its text, each message a line of its own.
        Assert.Equal(6, lines.Length);
        Assert.StartsWith("\rTrain:  50%|", lines[0], StringComparison.Ordinal);
        Assert.Equal("osprey: eval loss 1.5", lines[1]);
        Assert.StartsWith("\rTrain: 100%|", lines[2], StringComparison.Ordinal);
        Assert.Equal("osprey: saved checkpoint-2", lines[3]);
        Assert.Equal("run: out", lines[4]);
        Assert.Equal("", lines[5]);
    }

    [Fact]
    public void WithoutABarOrOffATerminalMessagesPassUnchanged()
    {
        var w = new StringWriter { NewLine = "\n" };
        ProgressReporter? none = null;
        var log = new ProgressAwareWriter(w, () => none) { NewLine = "\n" };
        log.WriteLine("osprey: 3 training samples");
        none = new ProgressReporter(w, interactive: false, "Train", 2, () => 0) { Width = 40 };
        none.Update(2, new Dictionary<string, string>());
        log.WriteLine("osprey: saved checkpoint-2");
        var lines = w.ToString().Split('\n');
        Assert.Equal(["osprey: 3 training samples", lines[1], "osprey: saved checkpoint-2", ""], lines);
        Assert.StartsWith("Train: 100%|", lines[1], StringComparison.Ordinal);
    }
}
