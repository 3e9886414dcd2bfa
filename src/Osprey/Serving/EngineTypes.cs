namespace Osprey.Serving;

/// <summary>Limits of an <see cref="InferenceEngine"/>.</summary>
public sealed record EngineOptions
{
    /// <summary>Requests decoded together at most (--max_batch_size); each holds one KV-cache slot.</summary>
    public int MaxBatchSize { get; init; } = 32;
    /// <summary>Prompt plus output tokens per request at most (--max_model_len); null: the model's context, capped at 8192.</summary>
    public int? MaxModelLen { get; init; }
    /// <summary>Requests waiting for a slot at most; more are refused with <see cref="EngineErrorKind.QueueFull"/>.</summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>Prompt tokens prefilled between two decode steps at most, so running requests keep streaming while long prompts arrive.</summary>
    public int PrefillChunk { get; init; } = 2048;
    /// <summary>On a CUDA device, replay decode steps as CUDA graphs (false: --enforce_eager, every kernel launched one by one).</summary>
    public bool CudaGraphs { get; init; } = true;
}

/// <summary>One request for an <see cref="InferenceEngine"/>.</summary>
/// <param name="PromptIds">The prompt's token ids.</param>
/// <param name="Sampling">How to generate.</param>
/// <param name="Adapter">The LoRA adapter to apply (a name given to the engine), or null for the base model.</param>
public sealed record EngineRequest(IReadOnlyList<int> PromptIds, SamplingParams Sampling, string? Adapter = null);

/// <summary>A token's log-probability.</summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob);

/// <summary>The generated token of one step with its log-probability and, when asked, the most likely alternatives.</summary>
public sealed record GeneratedToken(int TokenId, float Logprob, IReadOnlyList<TokenLogprob>? Top);

/// <summary>
/// What one engine step produced for a request. <see cref="TextDelta"/> is the new stable text (text that might
/// still turn out to begin a stop string is held back until it cannot); the last update has <see cref="Finish"/>
/// set and carries whatever text remained.
/// </summary>
public sealed record EngineUpdate
{
    /// <summary>New text since the previous update (may be empty).</summary>
    public string TextDelta { get; init; } = "";
    /// <summary>The token of this step, or null for a final update that adds none.</summary>
    public GeneratedToken? Token { get; init; }
    /// <summary>"stop" (end-of-sequence token or stop string) or "length" on the last update; else null.</summary>
    public string? Finish { get; init; }
    /// <summary>The stop string or stop token id that ended the request, if any.</summary>
    public object? StopReason { get; init; }
    /// <summary>Prompt tokens.</summary>
    public int PromptTokens { get; init; }
    /// <summary>Tokens generated so far.</summary>
    public int CompletionTokens { get; init; }
}

/// <summary>The whole result of a request.</summary>
public sealed record EngineResult(string Text, IReadOnlyList<GeneratedToken> Tokens, string Finish, object? StopReason, int PromptTokens);

/// <summary>Counters of an <see cref="InferenceEngine"/>, read at any time.</summary>
public sealed record EngineStats(int Running, int Waiting, int SlotsInUse, int MaxBatchSize, int MaxModelLen, long Completed, long Cancelled, long GeneratedTokens);

/// <summary>Why the engine refused a request.</summary>
public enum EngineErrorKind
{
    /// <summary>A field is out of range (HTTP 400).</summary>
    InvalidRequest,
    /// <summary>The prompt plus max_tokens does not fit in max_model_len (HTTP 400).</summary>
    PromptTooLong,
    /// <summary>The waiting queue is full (HTTP 429).</summary>
    QueueFull,
    /// <summary>No model or adapter of that name (HTTP 404).</summary>
    UnknownModel,
    /// <summary>The engine is stopping or failed (HTTP 503).</summary>
    Unavailable,
}

/// <summary>A request the engine refused; <see cref="Kind"/> says which HTTP status fits.</summary>
public sealed class EngineException(EngineErrorKind kind, string message, Exception? inner = null) : OspreyException(message, inner!)
{
    /// <summary>Why.</summary>
    public EngineErrorKind Kind { get; } = kind;
}
