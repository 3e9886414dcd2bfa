namespace Osprey.Inference;

/// <summary>One sequence's output: the new tokens (an end-of-sequence token included) and why it ended.</summary>
public sealed record GenerationResult(IReadOnlyList<int> Tokens, FinishReason Reason);

/// <summary>Why a sequence stopped.</summary>
public enum FinishReason
{
    /// <summary>It emitted an end-of-sequence token.</summary>
    Eos,
    /// <summary>Its text reached a stop string.</summary>
    StopString,
    /// <summary>It reached max_new_tokens.</summary>
    Length,
}

/// <summary>A token as it is generated: which sequence, the id and its index among the new tokens.</summary>
public readonly record struct TokenEvent(int Sequence, int TokenId, int Index);
