namespace Osprey.Training;

/// <summary>One progress update: steps done of all, the latest logged loss, speed, memory and elapsed time.</summary>
public sealed record TrainingProgress(string Phase, long Step, long TotalSteps, double? Loss, double TokensPerSecond, double MemoryGiB, double ElapsedSeconds);
