using System.Text.Json;

namespace Osprey.Serving;

/// <summary>One function call a model wrote in its reply.</summary>
/// <param name="Name">The function's name.</param>
/// <param name="ArgumentsJson">The arguments as a JSON object text (OpenAI's <c>function.arguments</c>); "{}" when the model gave none.</param>
public sealed record ParsedToolCall(string Name, string ArgumentsJson)
{
    /// <summary>The arguments as a dictionary of plain values (strings, numbers, booleans, lists, dictionaries; JSON null as null).</summary>
    public Dictionary<string, object?> Arguments()
    {
        using var doc = JsonDocument.Parse(ArgumentsJson);
        return doc.RootElement.ValueKind == JsonValueKind.Object
            ? doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => Plain(p.Value))
            : [];
    }

    static object? Plain(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(Plain).ToList(),
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => Plain(p.Value)),
        _ => null,
    };
}
