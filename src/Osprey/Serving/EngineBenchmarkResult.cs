namespace Osprey.Serving;

/// <summary>One serving measurement: <see cref="Concurrency"/> requests submitted at once to an <see cref="InferenceEngine"/>.</summary>
/// <param name="Concurrency">Requests in flight together.</param>
/// <param name="PromptLength">Prompt tokens per request.</param>
/// <param name="NewTokens">Tokens generated per request (end-of-sequence ignored).</param>
/// <param name="WallSeconds">From the first submit to the last token.</param>
/// <param name="TtftMeanSeconds">Mean time from submit to a request's first token.</param>
/// <param name="TtftMaxSeconds">Slowest first token.</param>
/// <param name="ThroughputTokensPerSecond">All generated tokens over the wall time.</param>
/// <param name="DecodeTokensPerSecondPerRequest">Mean over requests of (tokens after the first) / (time after the first).</param>
/// <param name="MillisecondsPerToken">Mean inter-token time of a request.</param>
/// <param name="GpuUsedBytes">GPU memory in use at the end (NVML, whole device), or -1 on the CPU.</param>
/// <param name="ResponseFormat">The grammar every request was decoded under ("json_object" or the schema file), or null for free text.</param>
/// <param name="GeneratedTokens">All tokens generated in the timed round (with a grammar, rows end when their value does).</param>
public sealed record EngineBenchmarkResult(int Concurrency, int PromptLength, int NewTokens, double WallSeconds, double TtftMeanSeconds,
    double TtftMaxSeconds, double ThroughputTokensPerSecond, double DecodeTokensPerSecondPerRequest, double MillisecondsPerToken, long GpuUsedBytes,
    string? ResponseFormat = null, int GeneratedTokens = 0);
