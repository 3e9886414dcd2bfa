using System.Text.Json;
using System.Text.Json.Serialization;

namespace Osprey.Serving;

/// <summary>The <c>function</c> of a <see cref="ChatTurnToolCall"/>: its name and arguments.</summary>
public sealed record ChatTurnFunctionCall
{
    /// <summary>The function's name.</summary>
    [JsonPropertyName("name"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Name { get; init; }

    /// <summary>
    /// The arguments as JSON: a string holding the JSON object (OpenAI's wire shape) or the object itself (how
    /// Microsoft.Extensions.AI carries them). Templates test which one they got, so it is kept as given.
    /// </summary>
    /// <remarks>Left out when absent (the default, undefined element); a JSON null stays a null.</remarks>
    [JsonPropertyName("arguments"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public JsonElement Arguments { get; init; }

    /// <summary>Fields this record does not model, passed to the template as sent.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; init; }
}
