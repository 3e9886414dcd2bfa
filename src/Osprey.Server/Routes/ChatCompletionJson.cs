using System.Text.Json.Serialization;

namespace Osprey.Server;

/// <summary>The JSON of /v1/chat/completions: the whole response and the streamed chunks.</summary>
internal static class ChatCompletionJson
{
    /// <summary>A non-streamed response.</summary>
    public sealed record Completion(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("created")] long Created,
        [property: JsonPropertyName("model")] string Model,
        [property: JsonPropertyName("choices")] IReadOnlyList<Choice> Choices,
        [property: JsonPropertyName("usage")] UsageJson Usage);

    /// <summary>One choice; logprobs is written as null when not asked for.</summary>
    public sealed record Choice(
        [property: JsonPropertyName("index")] int Index,
        [property: JsonPropertyName("message")] Message Message,
        [property: JsonPropertyName("logprobs")] LogprobsJson.Chat? Logprobs,
        [property: JsonPropertyName("finish_reason")] string FinishReason);

    /// <summary>
    /// The reply; content is null (and written) when the reply is only tool calls. refusal is always null (this
    /// server never refuses) and always written: OpenAI's chat completion message has it as a required, nullable field.
    /// </summary>
    public sealed record Message(
        [property: JsonPropertyName("role")] string Role,
        [property: JsonPropertyName("content")] string? Content,
        [property: JsonPropertyName("refusal")] string? Refusal,
        [property: JsonPropertyName("tool_calls"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallJson>? ToolCalls);

    /// <summary>A tool call; streamed ones carry their index.</summary>
    public sealed record ToolCallJson(
        [property: JsonPropertyName("index"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Index,
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("type")] string Type,
        [property: JsonPropertyName("function")] FunctionJson Function);

    /// <summary>The function of a tool call; arguments are a JSON string.</summary>
    public sealed record FunctionJson(
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("arguments")] string Arguments);

    /// <summary>
    /// A streamed chunk. <see cref="Usage"/> is left out unless the client asked for usage; then it is
    /// <see cref="HttpJson.Null"/> on every chunk but the last, which holds the <see cref="UsageJson"/>.
    /// </summary>
    public sealed record Chunk(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("created")] long Created,
        [property: JsonPropertyName("model")] string Model,
        [property: JsonPropertyName("choices")] IReadOnlyList<ChunkChoice> Choices,
        [property: JsonPropertyName("usage"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Usage);

    /// <summary>One choice's increment; logprobs and finish_reason are written as null when they have none.</summary>
    public sealed record ChunkChoice(
        [property: JsonPropertyName("index")] int Index,
        [property: JsonPropertyName("delta")] Delta Delta,
        [property: JsonPropertyName("logprobs")] LogprobsJson.Chat? Logprobs,
        [property: JsonPropertyName("finish_reason")] string? FinishReason);

    /// <summary>What a chunk adds; fields without news are left out.</summary>
    public sealed record Delta(
        [property: JsonPropertyName("role"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role = null,
        [property: JsonPropertyName("content"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content = null,
        [property: JsonPropertyName("tool_calls"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallJson>? ToolCalls = null);

    /// <summary>The calls as JSON; <paramref name="withIndex"/> for streamed ones.</summary>
    public static IReadOnlyList<ToolCallJson>? ToolCalls(IReadOnlyList<ToolCall> calls, bool withIndex) =>
        calls.Count == 0 ? null : calls.Select((c, i) => new ToolCallJson(withIndex ? i : null, c.Id, "function", new FunctionJson(c.Name, c.Arguments))).ToList();
}
