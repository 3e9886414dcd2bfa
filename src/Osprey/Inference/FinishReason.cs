namespace Osprey.Inference;

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
