namespace Osprey.Training;

/// <summary>What a finished (or interrupted) training run left behind.</summary>
/// <param name="RunDirectory">The run folder (logging.jsonl, args.json, checkpoints, images).</param>
/// <param name="LastCheckpoint">The newest checkpoint-N folder, if any was saved.</param>
/// <param name="BestCheckpoint">The checkpoint with the lowest eval_loss, if any was evaluated.</param>
/// <param name="BestMetric">That checkpoint's eval_loss.</param>
/// <param name="GlobalStep">The optimizer steps done.</param>
/// <param name="Interrupted">True when cancellation stopped the run early (a checkpoint was saved to resume from).</param>
public sealed record TrainingResult(string RunDirectory, string? LastCheckpoint, string? BestCheckpoint, double? BestMetric, long GlobalStep, bool Interrupted);
