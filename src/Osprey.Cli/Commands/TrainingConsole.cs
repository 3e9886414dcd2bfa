using System.Globalization;
using Osprey.Reporting;
using Osprey.Training;

namespace Osprey.Cli.Commands;

/// <summary>
/// The console around a training call: Ctrl-C or SIGTERM stops after the current step (a second Ctrl-C quits at once), progress
/// is drawn on stderr, and the result's folders are printed. Shared by <c>sft</c>, <c>pt</c> and <c>rlhf</c>.
/// </summary>
internal static class TrainingConsole
{
    /// <summary>Runs <paramref name="train"/> with cancellation and progress wired to the console; returns the exit code.</summary>
    public static int Run(Func<TextWriter, Action<TrainingProgress>, CancellationToken, TrainingResult> train, TextWriter stdout, TextWriter stderr)
    {
        ProgressReporter? reporter = null;
        // The run's messages share stderr with the bar: each starts on a line of its own, never after the bar.
        var log = new ProgressAwareWriter(stderr, () => reporter);
        using var cancel = new CancellationTokenSource();
        using var signals = new StopSignals(() =>
        {
            if (cancel.IsCancellationRequested) return false; // a second Ctrl-C (or SIGTERM) ends the process at once
            cancel.Cancel();
            stderr.WriteLine("\nosprey: stopping after this step and saving a checkpoint (Ctrl-C again to quit at once).");
            return true;
        });
        TrainingResult result;
        try
        {
            result = train(log, p =>
            {
                reporter ??= new ProgressReporter(stderr, ProgressReporter.IsInteractive(stderr), p.Phase, p.TotalSteps);
                var fields = new Dictionary<string, string>();
                if (p.Loss is double loss) fields["loss"] = loss.ToString("F4", CultureInfo.InvariantCulture);
                if (p.TokensPerSecond > 0) fields["tok/s"] = p.TokensPerSecond.ToString("F0", CultureInfo.InvariantCulture);
                if (p.MemoryGiB > 0) fields["mem"] = p.MemoryGiB.ToString("F2", CultureInfo.InvariantCulture) + "GiB";
                reporter.Update(p.Step, fields);
            }, cancel.Token);
        }
        finally
        {
            signals.Dispose();
            reporter?.Finish();
        }
        stdout.WriteLine($"run: {result.RunDirectory}");
        stdout.WriteLine($"last_model_checkpoint: {result.LastCheckpoint}");
        if (result.BestCheckpoint is not null) stdout.WriteLine($"best_model_checkpoint: {result.BestCheckpoint} (eval_loss {result.BestMetric:F4})");
        return result.Interrupted ? 130 : 0;
    }
}
