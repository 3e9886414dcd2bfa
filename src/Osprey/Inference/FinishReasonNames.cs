namespace Osprey.Inference;

/// <summary>The names a <see cref="FinishReason"/> goes by outside Osprey.</summary>
public static class FinishReasonNames
{
    /// <summary>OpenAI's finish_reason: "stop" for an end-of-sequence token or a stop string, "length" for the token limit.</summary>
    public static string OpenAiName(this FinishReason reason) => reason == FinishReason.Length ? "length" : "stop";

    /// <summary>The lower-case name <c>osprey infer</c> prints ("eos", "stopstring", "length").</summary>
    public static string LowerName(this FinishReason reason) => reason.ToString().ToLowerInvariant();
}
