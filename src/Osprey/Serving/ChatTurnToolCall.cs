using System.Text.Json;
using System.Text.Json.Serialization;

namespace Osprey.Serving;

/// <summary>One function call of an assistant <see cref="ChatTurn"/>, in OpenAI's <c>tool_calls</c> shape.</summary>
public sealed record ChatTurnToolCall
{
    /// <summary>The call's id, which the tool message answering it repeats.</summary>
    [JsonPropertyName("id"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Id { get; init; }

    /// <summary>"function" (left out when the client left it out).</summary>
    [JsonPropertyName("type"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Type { get; init; }

    /// <summary>The function and its arguments.</summary>
    [JsonPropertyName("function"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ChatTurnFunctionCall? Function { get; init; }

    /// <summary>Fields this record does not model, passed to the template as sent.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }
}
