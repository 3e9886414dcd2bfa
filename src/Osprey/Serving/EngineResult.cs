using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>The whole result of a request.</summary>
/// <param name="Text">The output text (it ends before a stop string).</param>
/// <param name="Tokens">Every generated token.</param>
/// <param name="Reason">Why the request ended.</param>
/// <param name="StopReason">The stop string or stop token id that ended the request, if any.</param>
/// <param name="PromptTokens">Prompt tokens.</param>
public sealed record EngineResult(string Text, IReadOnlyList<GeneratedToken> Tokens, FinishReason Reason, object? StopReason, int PromptTokens)
{
    /// <summary>OpenAI's finish_reason: "stop" or "length".</summary>
    public string Finish => Reason.OpenAiName();
}
