using Osprey.Inference;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>The HTTP answer to an engine refusal.</summary>
internal static class EngineErrors
{
    /// <summary>The status and code of <paramref name="e"/>; a too-long prompt names <paramref name="promptField"/>.</summary>
    public static ApiException ToApi(EngineException e, string? promptField = "messages") => e.Kind switch
    {
        EngineErrorKind.InvalidRequest => new ApiException(400, e.Message),
        EngineErrorKind.PromptTooLong => new ApiException(400, e.Message, promptField, "context_length_exceeded"),
        EngineErrorKind.UnknownModel => new ApiException(404, e.Message, "model", "model_not_found"),
        EngineErrorKind.QueueFull => new ApiException(429, e.Message, null, "queue_full"),
        _ => new ApiException(503, e.Message, null, "unavailable"),
    };
}
