using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>
/// What one engine step produced for a request. <see cref="TextDelta"/> is the new stable text (text that might
/// still turn out to begin a stop string is held back until it cannot); the last update has <see cref="Reason"/>
/// set and carries whatever text remained.
/// </summary>
public sealed record EngineUpdate
{
    /// <summary>New text since the previous update (may be empty).</summary>
    public string TextDelta { get; init; } = "";
    /// <summary>The token of this step, or null for a final update that adds none.</summary>
    public GeneratedToken? Token { get; init; }
    /// <summary>Why the request ended, on the last update; else null.</summary>
    public FinishReason? Reason { get; init; }
    /// <summary>OpenAI's finish_reason on the last update ("stop": end-of-sequence token or stop string; "length"); else null.</summary>
    public string? Finish => Reason?.OpenAiName();
    /// <summary>The stop string or stop token id that ended the request, if any.</summary>
    public object? StopReason { get; init; }
    /// <summary>Prompt tokens.</summary>
    public int PromptTokens { get; init; }
    /// <summary>Tokens generated so far.</summary>
    public int CompletionTokens { get; init; }
}
