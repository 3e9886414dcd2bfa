using Osprey.Inference;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>The HTTP answer to an engine refusal.</summary>
internal static class EngineErrors
{
    /// <summary>The status and code of <paramref name="e"/>; a too-long prompt names <paramref name="promptField"/>.</summary>
    public static ApiException ToApi(EngineException e, string? promptField = "messages") => e.Kind switch
    {
        EngineErrorKind.InvalidRequest => new ApiException(400, e.Message, InvalidField(e.Message, promptField)),
        EngineErrorKind.PromptTooLong => new ApiException(400, e.Message, promptField, "context_length_exceeded"),
        EngineErrorKind.UnknownModel => new ApiException(404, e.Message, "model", "model_not_found"),
        EngineErrorKind.QueueFull => new ApiException(429, e.Message, null, "queue_full"),
        _ => new ApiException(503, e.Message, null, "unavailable"),
    };

    /// <summary>The field an engine refusal is about: its messages start with "the prompt", "the input" or the field's name.</summary>
    static string? InvalidField(string message, string? promptField) =>
        message.StartsWith("logit_bias", StringComparison.Ordinal) ? "logit_bias"
        : message.StartsWith("the prompt", StringComparison.Ordinal) || message.StartsWith("the input", StringComparison.Ordinal) ? promptField
        : null;
}
