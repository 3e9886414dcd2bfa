using System.Text.Json.Serialization;

namespace Osprey.Server;

/// <summary>The JSON of /v1/completions; a streamed chunk has the same shape as the whole response.</summary>
internal static class CompletionJson
{
    /// <summary>
    /// A response or chunk. <see cref="Usage"/>: the <see cref="UsageJson"/> of a whole response or of the last
    /// chunk; <see cref="HttpJson.Null"/> on other chunks when the client asked for usage; left out otherwise.
    /// </summary>
    public sealed record Completion(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("created")] long Created,
        [property: JsonPropertyName("model")] string Model,
        [property: JsonPropertyName("choices")] IReadOnlyList<Choice> Choices,
        [property: JsonPropertyName("usage"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Usage);

    /// <summary>One choice (or its increment); logprobs and finish_reason are written as null when they have none.</summary>
    public sealed record Choice(
        [property: JsonPropertyName("index")] int Index,
        [property: JsonPropertyName("text")] string Text,
        [property: JsonPropertyName("logprobs")] LogprobsJson.Legacy? Logprobs,
        [property: JsonPropertyName("finish_reason")] string? FinishReason);
}
