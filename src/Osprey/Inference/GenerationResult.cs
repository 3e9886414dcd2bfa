namespace Osprey.Inference;

/// <summary>One sequence's output: the new tokens (an end-of-sequence token included) and why it ended.</summary>
public sealed record GenerationResult(IReadOnlyList<int> Tokens, FinishReason Reason);
