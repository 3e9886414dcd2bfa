using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Osprey.Serving;

/// <summary>
/// The one conversion of a conversation into the chat template's input, shared by the HTTP server and
/// <see cref="OspreyChatClient"/>: <see cref="ChatTurn"/>s become OpenAI-shaped message objects, tools stay the
/// OpenAI tool objects they are. Microsoft.Extensions.AI messages and function declarations are turned into
/// those same shapes here too.
/// </summary>
public static class ChatMessageConversion
{
    /// <summary>The messages as the template engine takes them (JSON objects in OpenAI's shape).</summary>
    public static List<object?> TemplateMessages(IEnumerable<ChatTurn> turns)
    {
        ArgumentNullException.ThrowIfNull(turns);
        return turns.Select(t => (object?)JsonSerializer.SerializeToElement(t)).ToList();
    }

    /// <summary>The tools as the template engine takes them; null (no tools) for null or an empty list.</summary>
    public static List<object?>? TemplateTools(IReadOnlyList<JsonElement>? tools) =>
        tools is null || tools.Count == 0 ? null : tools.Select(t => (object?)t).ToList();

    /// <summary>
    /// Instructions join the first system message, or become one in front of the conversation.
    /// </summary>
    public static List<ChatTurn> WithInstructions(IReadOnlyList<ChatTurn> turns, string instructions)
    {
        ArgumentNullException.ThrowIfNull(turns);
        var list = new List<ChatTurn>(turns);
        if (list.Count > 0 && list[0].Role == "system")
        {
            var content = list[0].Content;
            list[0] = list[0] with { Content = string.IsNullOrEmpty(content) ? instructions : content + "\n\n" + instructions };
        }
        else
        {
            list.Insert(0, new ChatTurn { Role = "system", Content = instructions });
        }
        return list;
    }

    /// <summary>
    /// Microsoft.Extensions.AI messages in OpenAI's message shape: text joined, function calls as
    /// <c>tool_calls</c>, and each function result as its own "tool" message. Text only: images and other
    /// data are refused with <see cref="NotSupportedException"/>.
    /// </summary>
    public static List<ChatTurn> FromChatMessages(IEnumerable<ChatMessage> messages) => FromChatMessages(messages, null);

    /// <summary>
    /// As <see cref="FromChatMessages(IEnumerable{ChatMessage})"/>; with <paramref name="images"/> (a vision-language
    /// model) each image <see cref="DataContent"/> (image/png, image/jpeg, ...) becomes
    /// <see cref="ServedModel.ImagePlaceholder"/> in its message's text and its bytes are added to the list, in order.
    /// Other data, and images given by <see cref="UriContent"/> (nothing is downloaded in-process), are refused with
    /// <see cref="NotSupportedException"/>.
    /// </summary>
    public static List<ChatTurn> FromChatMessages(IEnumerable<ChatMessage> messages, List<(byte[] Data, string Where)>? images)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = new List<ChatTurn>();
        var index = 0;
        foreach (var m in messages)
        {
            var part = 0;
            index++;
            var text = new StringBuilder();
            var calls = new List<ChatTurnToolCall>();
            var results = new List<FunctionResultContent>();
            foreach (var c in m.Contents)
            {
                part++;
                switch (c)
                {
                    case TextContent t:
                        text.Append(t.Text);
                        break;
                    case FunctionCallContent f:
                        calls.Add(new ChatTurnToolCall
                        {
                            Id = f.CallId,
                            Type = "function",
                            Function = new ChatTurnFunctionCall { Name = f.Name, Arguments = ArgumentsJson(f.Arguments) },
                        });
                        break;
                    case FunctionResultContent r:
                        results.Add(r);
                        break;
                    case DataContent d when images is not null && d.HasTopLevelMediaType("image"):
                        text.Append(ServedModel.ImagePlaceholder);
                        images.Add((d.Data.ToArray(), $"message {index}, content {part} ({d.MediaType})"));
                        break;
                    case DataContent or UriContent when images is not null:
                        throw new NotSupportedException($"message {index}, content {part}: OspreyChatClient takes text and images given as DataContent (image/png, image/jpeg, ...); this {c.GetType().Name} is {(c is DataContent d2 ? d2.MediaType : "a link, which it does not download")}.");
                    case DataContent or UriContent:
                        throw new NotSupportedException($"OspreyChatClient takes text only for this model (serve a vision-language model such as Qwen2-VL or LLaVA for images); a {m.Role} message holds {c.GetType().Name}.");
                }
            }
            // A message of function results becomes one OpenAI "tool" message per result.
            foreach (var r in results)
                list.Add(new ChatTurn { Role = "tool", ToolCallId = r.CallId, Content = ResultText(r) });
            if (results.Count > 0 && text.Length == 0 && calls.Count == 0) continue;
            list.Add(new ChatTurn { Role = m.Role.Value, Content = text.ToString(), ToolCalls = calls.Count > 0 ? calls : null });
        }
        return list;
    }

    /// <summary>The function declarations among <paramref name="tools"/> as OpenAI tool objects; null when there are none.</summary>
    public static List<JsonElement>? FromAITools(IEnumerable<AITool>? tools)
    {
        var declarations = tools?.OfType<AIFunctionDeclaration>().ToList();
        if (declarations is null || declarations.Count == 0) return null;
        return declarations.Select(f => Json(w =>
        {
            w.WriteStartObject();
            w.WriteString("type", "function");
            w.WriteStartObject("function");
            w.WriteString("name", f.Name);
            w.WriteString("description", f.Description ?? "");
            w.WritePropertyName("parameters");
            if (f.JsonSchema.ValueKind == JsonValueKind.Undefined) w.WriteRawValue("""{"type":"object","properties":{}}""");
            else f.JsonSchema.WriteTo(w);
            w.WriteEndObject();
            w.WriteEndObject();
        })).ToList();
    }

    /// <summary>
    /// Call arguments as a JSON object. A whole floating-point value keeps its ".0" so the template still sees a
    /// float (a double 1.0 is written "1.0", not "1"), as it did when arguments reached it as .NET values.
    /// </summary>
    static JsonElement ArgumentsJson(IDictionary<string, object?>? arguments) => Json(w =>
    {
        w.WriteStartObject();
        foreach (var (key, value) in arguments ?? new Dictionary<string, object?>())
        {
            w.WritePropertyName(key);
            switch (value)
            {
                case null: w.WriteNullValue(); break;
                case string s: w.WriteStringValue(s); break;
                case bool b: w.WriteBooleanValue(b); break;
                case int i: w.WriteNumberValue(i); break;
                case long l: w.WriteNumberValue(l); break;
                case double d: WriteFloat(w, d); break;
                case float f: WriteFloat(w, f); break;
                case decimal m: WriteFloat(w, (double)m); break;
                case JsonElement e: e.WriteTo(w); break;
                default: JsonSerializer.Serialize(w, value, value.GetType()); break;
            }
        }
        w.WriteEndObject();
    });

    static void WriteFloat(Utf8JsonWriter w, double d)
    {
        var text = d.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        if (double.IsFinite(d) && !text.Contains('.', StringComparison.Ordinal) && !text.Contains('E', StringComparison.Ordinal)) text += ".0";
        w.WriteRawValue(text);
    }

    static string ResultText(FunctionResultContent r) => r.Result switch
    {
        null => r.Exception?.Message ?? "",
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString()!,
        JsonElement e => e.GetRawText(),
        var other => JsonSerializer.Serialize(other, other.GetType()),
    };

    static JsonElement Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        using var doc = JsonDocument.Parse(buffer.WrittenMemory);
        return doc.RootElement.Clone();
    }
}
