namespace Osprey.Serving;

/// <summary>Counters of an <see cref="InferenceEngine"/>, read at any time.</summary>
public sealed record EngineStats(int Running, int Waiting, int SlotsInUse, int MaxBatchSize, int MaxModelLen, long Completed, long Cancelled, long GeneratedTokens);
