namespace Osprey.Inference;

/// <summary>Why a sequence stopped; <see cref="FinishReasonNames.OpenAiName"/> gives OpenAI's "stop"/"length".</summary>
public enum FinishReason
{
    /// <summary>It emitted an end-of-sequence (stop) token.</summary>
    Eos,
    /// <summary>Its text reached a stop string.</summary>
    StopString,
    /// <summary>It reached its token limit (max_tokens / max_new_tokens, or the end of the context).</summary>
    Length,
}
