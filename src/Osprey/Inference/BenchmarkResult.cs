namespace Osprey.Inference;

/// <summary>One benchmark measurement.</summary>
/// <param name="Batch">Rows.</param>
/// <param name="PromptLength">Prompt tokens per row.</param>
/// <param name="NewTokens">Generated tokens per row.</param>
/// <param name="PrefillSeconds">Time to the first token.</param>
/// <param name="PrefillTokensPerSecond">Prompt tokens of all rows per prefill second.</param>
/// <param name="DecodeSeconds">Time from the first token to the last.</param>
/// <param name="DecodeTokensPerSecond">Tokens after the first, all rows, per decode second.</param>
/// <param name="MillisecondsPerStep">Decode time per step.</param>
/// <param name="GpuUsedBytes">GPU memory in use at the end (NVML, whole device), or -1 on the CPU.</param>
public sealed record BenchmarkResult(int Batch, int PromptLength, int NewTokens, double PrefillSeconds, double PrefillTokensPerSecond,
    double DecodeSeconds, double DecodeTokensPerSecond, double MillisecondsPerStep, long GpuUsedBytes);
