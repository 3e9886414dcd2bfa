namespace Osprey.Inference;

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
