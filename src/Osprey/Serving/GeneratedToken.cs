namespace Osprey.Serving;

/// <summary>The generated token of one step with its log-probability and, when asked, the most likely alternatives.</summary>
public sealed record GeneratedToken(int TokenId, float Logprob, IReadOnlyList<TokenLogprob>? Top);
