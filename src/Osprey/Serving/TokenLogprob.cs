namespace Osprey.Serving;

/// <summary>A token's log-probability.</summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob);
