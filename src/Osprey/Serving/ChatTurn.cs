using System.Text.Json;
using System.Text.Json.Serialization;

namespace Osprey.Serving;

/// <summary>
/// One message of a conversation in OpenAI's chat shape, the shape chat templates read. The HTTP server reads
/// request messages into these and <see cref="OspreyChatClient"/> turns Microsoft.Extensions.AI messages into
/// them, so both hand the template the same input (<see cref="ChatMessageConversion"/>).
/// </summary>
/// <remarks>
/// Property order is the order the template sees the fields in (role, tool_call_id, content, tool_calls, then
/// any others). A null <see cref="Content"/> is left out, as an absent one is: templates tell an undefined
/// content from a None one, so a client's explicit <c>"content": null</c> travels in <see cref="Extra"/>.
/// </remarks>
public sealed record ChatTurn
{
    /// <summary>system, user, assistant or tool.</summary>
    [JsonPropertyName("role")]
    public required string Role { get; init; }

    /// <summary>The call a tool message answers.</summary>
    [JsonPropertyName("tool_call_id"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ToolCallId { get; init; }

    /// <summary>The text (content parts already joined); null for an assistant message that only calls tools.</summary>
    [JsonPropertyName("content"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Content { get; init; }

    /// <summary>The function calls of an assistant message.</summary>
    [JsonPropertyName("tool_calls"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ChatTurnToolCall>? ToolCalls { get; init; }

    /// <summary>Fields this record does not model (such as <c>name</c>), passed to the template as the client sent them.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }
}
