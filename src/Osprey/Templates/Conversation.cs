using System.Globalization;
using System.Text.Json;

namespace Osprey.Templates;

/// <summary>
/// One training or inference sample in ms-swift's messages format: a list of messages
/// (<c>{"role": "system"|"user"|"assistant"|"tool", "content": ...}</c>, assistant messages may carry OpenAI-style
/// <c>tool_calls</c> and a per-message <c>"loss": true|false|number</c>) plus an optional list of tool schemas.
/// Messages and tools are dictionaries, lists, primitives or <see cref="JsonElement"/>s. ms-swift's
/// <c>tool_call</c>/<c>tool_response</c> roles are accepted and turned into assistant <c>tool_calls</c> and
/// <c>tool</c> messages.
/// </summary>
public sealed record Conversation(IReadOnlyList<object?> Messages, IReadOnlyList<object?>? Tools = null)
{
    /// <summary>
    /// Reads one dataset row, e.g. a JSON line <c>{"messages": [...], "tools": [...]}</c>. <c>tools</c> may also be a
    /// JSON string holding the list, as ms-swift datasets often store it.
    /// </summary>
    public static Conversation FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new OspreyException($"The conversation is not valid JSON ({e.Message}); write one JSON object with a \"messages\" list per sample.", e);
        }
        using (doc) return FromJson(doc.RootElement.Clone());
    }

    /// <summary>Reads a dataset row that is already parsed; see <see cref="FromJson(string)"/>.</summary>
    public static Conversation FromJson(JsonElement row)
    {
        if (row.ValueKind != JsonValueKind.Object || !row.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            throw new OspreyException("The conversation has no \"messages\" list; write each sample as {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}.");
        List<object?>? tools = null;
        if (row.TryGetProperty("tools", out var t))
        {
            if (t.ValueKind == JsonValueKind.String)
            {
                var text = t.GetString();
                if (!string.IsNullOrWhiteSpace(text))
                {
                    try
                    {
                        using var toolsDoc = JsonDocument.Parse(text);
                        t = toolsDoc.RootElement.Clone();
                    }
                    catch (JsonException e)
                    {
                        throw new OspreyException($"The conversation's \"tools\" string is not valid JSON ({e.Message}); store the tool list as JSON.", e);
                    }
                }
            }
            if (t.ValueKind == JsonValueKind.Array) tools = t.EnumerateArray().Select(x => (object?)x).ToList();
            else if (t.ValueKind == JsonValueKind.Object) tools = [t];
        }
        return new Conversation(messages.EnumerateArray().Select(x => (object?)x).ToList(), tools);
    }
}

/// <summary>A message as the templates see it: plain .NET values, the <c>loss</c> key taken out.</summary>
internal sealed class ChatMessage
{
    public required string Role { get; init; }

    /// <summary>The message's fields (role and content included) for Jinja templates, without <c>loss</c>.</summary>
    public required Dictionary<string, object?> Fields { get; init; }

    /// <summary>The <c>loss</c> override: 1 for true, 0 for false, the number itself for a number; null when absent.</summary>
    public double? Loss { get; init; }

    public object? Content => Fields.GetValueOrDefault("content");

    /// <summary>The content as text: a string as is, a list of parts joined by their text, null as "".</summary>
    public string Text => ContentText(Content);

    public IReadOnlyList<object?> ToolCalls => Fields.GetValueOrDefault("tool_calls") as IReadOnlyList<object?> ?? [];

    public ChatMessage WithContent(object? content)
    {
        var fields = new Dictionary<string, object?>(Fields) { ["content"] = content };
        return new ChatMessage { Role = Role, Fields = fields, Loss = Loss };
    }

    public static string ContentText(object? content) => content switch
    {
        null => "",
        string s => s,
        IReadOnlyList<object?> parts => string.Concat(parts.Select(p => p switch
        {
            string s => s,
            IReadOnlyDictionary<string, object?> d when d.GetValueOrDefault("text") is string s => s,
            _ => "",
        })),
        _ => Convert.ToString(content, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>Normalizes the caller's messages; ms-swift's tool_call/tool_response roles become OpenAI-style ones.</summary>
    public static List<ChatMessage> Normalize(IReadOnlyList<object?> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var result = new List<ChatMessage>(messages.Count);
        for (var i = 0; i < messages.Count; i++)
        {
            if (Plain.From(messages[i]) is not Dictionary<string, object?> fields)
                throw new OspreyException($"Message {i} is not an object; write each message as {{\"role\": ..., \"content\": ...}}.");
            if (fields.GetValueOrDefault("role") is not string role)
                throw new OspreyException($"Message {i} has no \"role\"; give every message a role (system, user, assistant or tool).");
            double? loss = null;
            if (fields.Remove("loss", out var lossValue) && lossValue is not null)
            {
                loss = lossValue switch
                {
                    bool b => b ? 1 : 0,
                    long l => l,
                    double d => d,
                    _ => throw new OspreyException($"Message {i} has \"loss\": {lossValue}; use true, false or a number."),
                };
                if (role is not ("assistant" or "tool_call"))
                    throw new OspreyException($"Message {i} ({role}) has a \"loss\" key, but loss applies only to assistant messages; remove it or move it to an assistant message.");
            }
            switch (role)
            {
                case "tool_response":
                    fields["role"] = "tool";
                    result.Add(new ChatMessage { Role = "tool", Fields = fields });
                    break;
                case "tool_call":
                {
                    var call = ToolCallFromContent(fields.GetValueOrDefault("content"), i);
                    if (result.Count > 0 && result[^1].Role == "assistant")
                    {
                        var previous = result[^1];
                        var calls = new List<object?>(previous.ToolCalls) { call };
                        var merged = new Dictionary<string, object?>(previous.Fields) { ["tool_calls"] = calls };
                        if (merged.GetValueOrDefault("content") is null) merged["content"] = "";
                        result[^1] = new ChatMessage { Role = "assistant", Fields = merged, Loss = previous.Loss ?? loss };
                    }
                    else
                    {
                        var assistant = new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = "", ["tool_calls"] = new List<object?> { call } };
                        result.Add(new ChatMessage { Role = "assistant", Fields = assistant, Loss = loss });
                    }
                    break;
                }
                default:
                    result.Add(new ChatMessage { Role = role, Fields = fields, Loss = loss });
                    break;
            }
        }
        return result;
    }

    private static Dictionary<string, object?> ToolCallFromContent(object? content, int index)
    {
        object? parsed = content;
        if (content is string s)
        {
            try
            {
                using var doc = JsonDocument.Parse(s);
                parsed = Plain.From(doc.RootElement);
            }
            catch (JsonException)
            {
                throw new OspreyException($"Message {index} (tool_call) is not a JSON object; write its content as {{\"name\": ..., \"arguments\": ...}}.");
            }
        }
        if (parsed is not Dictionary<string, object?> d || d.GetValueOrDefault("name") is not string name)
            throw new OspreyException($"Message {index} (tool_call) has no function name; write its content as {{\"name\": ..., \"arguments\": ...}}.");
        var function = new Dictionary<string, object?> { ["name"] = name, ["arguments"] = d.GetValueOrDefault("arguments") ?? new Dictionary<string, object?>() };
        return new Dictionary<string, object?> { ["type"] = "function", ["function"] = function };
    }
}

/// <summary>Turns caller values (JSON elements, dictionaries, lists) into plain, mutable .NET values.</summary>
internal static class Plain
{
    public static object? From(object? value) => value switch
    {
        null => null,
        string or bool or long or double => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        float f => (double)f,
        decimal m => (double)m,
        JsonElement e => FromJson(e),
        IReadOnlyDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => From(kv.Value)),
        IDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => From(kv.Value)),
        System.Collections.IEnumerable e => e.Cast<object?>().Select(From).ToList(),
        _ => value,
    };

    private static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.Number => e.TryGetInt64(out var l) ? l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        _ => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value)),
    };
}
