namespace Osprey.Training;

/// <summary>How a run ended: its folder, the last and best checkpoints, steps done, and whether it was interrupted.</summary>
public sealed record SftResult(string RunDirectory, string? LastCheckpoint, string? BestCheckpoint, double? BestMetric, long GlobalStep, bool Interrupted);
