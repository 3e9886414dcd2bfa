using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Inference.Constraints;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>
/// The conversation of a chat request as <see cref="ChatTurn"/>s and OpenAI tool objects, checked field by field
/// so a malformed one is a 400 naming it. From here <see cref="ChatMessageConversion"/> (shared with
/// <see cref="OspreyChatClient"/>) makes the template's input.
/// </summary>
internal static class ChatInput
{
    /// <summary>OpenAI's message roles ("function" is its older name for tool results).</summary>
    static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool", "function"];

    /// <summary>The messages; content-part lists become their joined text. With <paramref name="images"/> (a
    /// vision-language model), each <c>image_url</c> part becomes <see cref="ServedModel.ImagePlaceholder"/> in the text and its URL
    /// and JSON path are added to the list; without it an image part is a 400.</summary>
    public static List<ChatTurn> Turns(JsonElement array, List<(string Url, string Where)>? images = null)
    {
        var list = new List<ChatTurn>();
        var i = 0;
        foreach (var m in array.EnumerateArray())
        {
            var param = $"messages[{i}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiException.Bad($"'{param}' must be an object with a role and content.", param);
            if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw ApiException.Bad($"'{param}.role' must be a string (system, user, assistant or tool).", param + ".role");
            // A role the template does not know would be rendered as whatever it falls back to, silently.
            if (!Roles.Contains(role.GetString()!))
                throw ApiException.Bad($"'{param}.role' is '{role.GetString()}'; use one of {string.Join(", ", Roles)}.", param + ".role");
            if (m.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Array)
            {
                var node = JsonNode.Parse(m.GetRawText())!.AsObject();
                node["content"] = JoinedText(content, param, images);
                list.Add(Turn(() => node.Deserialize<ChatTurn>(), param));
            }
            else if (m.TryGetProperty("content", out content) && content.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
            {
                throw ApiException.Bad($"'{param}.content' must be a string or a list of content parts.", param + ".content");
            }
            else
            {
                var turn = Turn(() => m.Deserialize<ChatTurn>(), param);
                // An explicit null content reaches the template as None, not as an absent (undefined) field.
                if (content.ValueKind == JsonValueKind.Null) turn = turn with { Extra = new(turn.Extra ?? []) { ["content"] = content } };
                list.Add(turn);
            }
            i++;
        }
        return list;
    }

    static string JoinedText(JsonElement content, string param, List<(string Url, string Where)>? images)
    {
        var text = new StringBuilder();
        var i = 0;
        foreach (var part in content.EnumerateArray())
        {
            var at = $"{param}.content[{i++}]";
            if (part.ValueKind != JsonValueKind.Object)
                throw ApiException.Bad($"'{at}' must be a content part object with a \"type\".", at);
            if (!part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                throw ApiException.Bad($"'{at}.type' must be a string such as \"text\".", at + ".type");
            if (type.GetString() == "image_url" && images is not null)
            {
                // OpenAI's shape: {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}.
                if (!part.TryGetProperty("image_url", out var iu) || iu.ValueKind != JsonValueKind.Object
                    || !iu.TryGetProperty("url", out var url) || url.ValueKind != JsonValueKind.String)
                    throw ApiException.Bad($"'{at}.image_url.url' must be a string (a data:image/...;base64 URL).", at + ".image_url.url");
                images.Add((url.GetString()!, at));
                text.Append(ServedModel.ImagePlaceholder);
                continue;
            }
            if (type.GetString() != "text")
                throw ApiException.Bad(type.GetString() == "image_url"
                    ? $"'{at}' is an image; this server's model takes text only (serve a vision-language model such as Qwen2-VL or LLaVA for images)."
                    : $"'{at}.type' is '{type.GetString()}'; this server takes text{(images is null ? "" : " and image_url")} parts only.", at + ".type");
            if (!part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                throw ApiException.Bad($"'{at}.text' must be a string.", at + ".text");
            text.Append(t.GetString());
        }
        return text.ToString();
    }

    /// <summary>The typed message; a field of the wrong type (such as a tool_calls that is not a list) is a 400.</summary>
    static ChatTurn Turn(Func<ChatTurn?> deserialize, string param)
    {
        try
        {
            return deserialize()!;
        }
        catch (JsonException e)
        {
            // The serializer's path ("$.tool_calls[0].function") names the field within the message.
            var at = e.Path is { Length: > 1 } path && path.StartsWith('$') ? param + (path[1] == '.' || path[1] == '[' ? path[1..] : "." + path[1..]) : param;
            throw ApiException.Bad($"'{at}' is not what an OpenAI chat message holds there: {e.Message}", at);
        }
    }

    /// <summary>The tools the template sees: none with tool_choice "none"; only the named one for a forced function.</summary>
    /// <remarks>Tools stay the objects the client sent: templates print them with tojson, so their fields keep their order.</remarks>
    public static List<JsonElement>? Tools(RequestFields f)
    {
        if (f.Get("tools") is not { } tools) return null;
        if (tools.ValueKind != JsonValueKind.Array) throw ApiException.Bad("'tools' must be a list of tool objects.", "tools");
        var list = new List<JsonElement>();
        foreach (var t in tools.EnumerateArray())
        {
            if (t.ValueKind != JsonValueKind.Object) throw ApiException.Bad($"'tools[{list.Count}]' must be a tool object.", $"tools[{list.Count}]");
            list.Add(t);
        }
        if (list.Count == 0) return null;
        switch (f.Get("tool_choice"))
        {
            case null:
                return list;
            case { ValueKind: JsonValueKind.String } s when s.GetString() is "auto" or "required":
                return list;
            case { ValueKind: JsonValueKind.String } s when s.GetString() == "none":
                return null;
            case { ValueKind: JsonValueKind.Object } o when o.TryGetProperty("function", out var fn) && fn.ValueKind == JsonValueKind.Object
                && fn.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String:
                var name = n.GetString();
                var chosen = list.Where(t => t.TryGetProperty("function", out var tf) && tf.ValueKind == JsonValueKind.Object
                    && tf.TryGetProperty("name", out var tn) && tn.ValueKind == JsonValueKind.String && tn.GetString() == name).ToList();
                if (chosen.Count == 0) throw ApiException.Bad($"'tool_choice' names function '{name}', which is not in 'tools'.", "tool_choice");
                return chosen;
            default:
                throw ApiException.Bad("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice");
        }
    }

    /// <summary>
    /// The grammar a forced call is decoded under: with tool_choice "required", one call of any function in
    /// 'tools'; with a named function, a call of that one; otherwise (none, auto, no tools) null. The arguments
    /// are held to the function's parameters schema whether or not the tool says "strict": decoding cannot follow
    /// a schema loosely. A schema outside the supported subset is a 400 naming its path
    /// (tools[0].function.parameters.properties.x.minimum).
    /// </summary>
    public static JsonSchemaGrammar? ForcedCall(RequestFields f)
    {
        if (f.Get("tools") is not { ValueKind: JsonValueKind.Array } tools) return null;
        string? only;
        switch (f.Get("tool_choice"))
        {
            case { ValueKind: JsonValueKind.String } s when s.GetString() == "required":
                only = null;
                break;
            case { ValueKind: JsonValueKind.Object } o when o.TryGetProperty("function", out var fn) && fn.ValueKind == JsonValueKind.Object
                && fn.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String:
                only = n.GetString();
                break;
            default:
                return null;
        }
        var functions = new List<(string Name, JsonElement? Parameters, string Path)>();
        var i = 0;
        foreach (var t in tools.EnumerateArray())
        {
            var at = $"tools[{i++}].function";
            if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("function", out var fn) || fn.ValueKind != JsonValueKind.Object) continue;
            if (!fn.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(name.GetString()))
                throw ApiException.Bad($"'{at}.name' must be a non-empty string.", at + ".name");
            if (only is not null && name.GetString() != only) continue;
            functions.Add((name.GetString()!, fn.TryGetProperty("parameters", out var p) ? p : null, at + ".parameters"));
        }
        if (functions.Count == 0) return null; // Tools() has already refused a named function that is not there.
        try
        {
            return ToolCallGrammar.For(functions);
        }
        catch (JsonSchemaException e)
        {
            throw ApiException.Bad(e.Message, e.Path);
        }
    }
}
