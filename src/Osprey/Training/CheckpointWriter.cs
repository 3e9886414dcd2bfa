using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Training.Reporting;
using Osprey.Tuners.Lora;

namespace Osprey.Training;

/// <summary>
/// Writes checkpoint-N folders as ms-swift lays them out (adapter or model files, tokenizer files, args.json, optimizer
/// state, scheduler.json, rng_state.json, trainer_state.json), each first to a .tmp folder renamed when complete, and
/// keeps at most <c>--save_total_limit</c> of them plus the best.
/// </summary>
internal static class CheckpointWriter
{
    /// <summary>The optimizer state file of a checkpoint.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Saves step <paramref name="step"/>'s checkpoint, updates <paramref name="state"/> (best by <paramref name="metric"/>,
    /// the step's --metric_for_best_model value when it was evaluated; last) and returns the folder.
    /// </summary>
    public static string Save(TrainingSession session, long step, double epoch, TrainerState state, double? metric, TrainingLog trainingLog)
    {
        var o = session.Options;
        var runDir = session.RunDirectory;
        var final = Path.Combine(runDir, $"checkpoint-{step}");
        RemoveLeftovers(runDir);
        WriteFolder(final, temp =>
        {
            if (o.TrainType == TrainType.Lora) PeftAdapter.Save(session.Model, VisionFreezing.LoraFor(session.Model, o), temp, session.Run.ModelDirectory, session.Optimizer.Master);
            else session.Model.Save(temp, 5L << 30);
            ModelFolder.CopyTokenizerFiles(session.Run.ModelDirectory, temp);
            File.Copy(Path.Combine(runDir, "args.json"), Path.Combine(temp, "args.json"), overwrite: true);
            if (!o.SaveOnlyModel)
            {
                var (tensors, meta) = session.Optimizer.State();
                SafetensorsWriter.Write(Path.Combine(temp, OptimizerFile), tensors, meta);
                var schedule = new JsonObject
                {
                    ["lr_scheduler_type"] = Options.OptionSet.ChoiceText(o.LrSchedulerType),
                    ["learning_rate"] = o.ResolvedLearningRate,
                    ["next_step"] = step,
                };
                File.WriteAllText(Path.Combine(temp, "scheduler.json"), schedule.ToJsonString(Indented) + "\n");
                var rng = new JsonObject
                {
                    ["seed"] = o.Seed,
                    ["scheme"] = "data order: shuffle seeded by (seed, epoch); dropout: seeded by (seed, step, micro-batch, layer)",
                    ["next_step"] = step,
                };
                File.WriteAllText(Path.Combine(temp, "rng_state.json"), rng.ToJsonString(Indented) + "\n");
            }
            // --metric_for_best_model decides the value and --greater_is_better its direction (lowest eval_loss by default).
            if (metric is double value && (state.BestMetric is not double best || (o.ResolvedGreaterIsBetter ? value > best : value < best)))
            {
                state.BestMetric = value;
                state.BestCheckpoint = final;
            }
            state.GlobalStep = step;
            state.Epoch = epoch;
            state.LastCheckpoint = final;
            state.Write(temp);
        });
        trainingLog.TryWritePlots(session.Run.Log);
        session.Run.Log.WriteLine($"osprey: saved {final}");
        Prune(runDir, o.SaveTotalLimit, state);
        return final;
    }

    /// <summary>
    /// Writes a checkpoint folder through <paramref name="write"/> into <paramref name="final"/>.tmp and renames it to
    /// <paramref name="final"/> when complete. A failed write (a full disk, a read-only or missing folder, a file in the
    /// way) removes the .tmp folder and becomes one sentence naming the folder: it is the user's disk, not a bug.
    /// </summary>
    internal static void WriteFolder(string final, Action<string> write)
    {
        var temp = final + ".tmp";
        try
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
            Directory.CreateDirectory(temp);
            write(temp);
            if (Directory.Exists(final)) Directory.Delete(final, true);
            Directory.Move(temp, final);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                if (Directory.Exists(temp)) Directory.Delete(temp, true);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // The save's own error says more than a failed cleanup would.
            }
            throw new OspreyException($"cannot save the checkpoint {final} ({e.Message.TrimEnd('.')}); free disk space there or pass another --output_dir.", e);
        }
    }

    /// <summary>
    /// Removes checkpoint-N.tmp folders of saves that a kill -9 or power loss cut short (a failed save removes its own):
    /// a run saves one checkpoint at a time, so any such folder is a leftover, never a checkpoint.
    /// </summary>
    static void RemoveLeftovers(string runDir)
    {
        foreach (var leftover in Directory.EnumerateDirectories(runDir, "checkpoint-*.tmp"))
        {
            try
            {
                Directory.Delete(leftover, true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Harmless where it is: the save that follows reports a disk that cannot be written.
            }
        }
    }

    static void Prune(string runDir, int? limit, TrainerState state)
    {
        if (limit is not int keepCount) return;
        var checkpoints = Directory.EnumerateDirectories(runDir)
            .Select(d => (Dir: d, Step: RunDirectories.CheckpointStep(d)))
            .Where(c => c.Step is not null && !c.Dir.EndsWith(".tmp", StringComparison.Ordinal))
            .OrderBy(c => c.Step)
            .ToList();
        var keep = checkpoints.TakeLast(keepCount).Select(c => c.Dir).ToHashSet();
        if (state.BestCheckpoint is { } best) keep.Add(best);
        foreach (var (dir, _) in checkpoints)
            if (!keep.Contains(dir)) Directory.Delete(dir, true);
    }
}
