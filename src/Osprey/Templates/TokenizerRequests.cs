using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Tokenization;

namespace Osprey.Templates;

/// <summary>
/// <c>osprey tokenize</c>'s protocol: one JSON line in (encode text, render a chat template, or encode a conversation
/// as training sees it), one JSON line out. A bad line answers <c>{"error": ...}</c> instead of throwing, so a stream
/// of requests goes on past it.
/// </summary>
/// <param name="tokenizer">The model's tokenizer.</param>
/// <param name="template">Chat format for training lines (<c>"labels": true</c>); null is the tokenizer's own template.</param>
/// <param name="options">System message and loss scale for training lines.</param>
public sealed class TokenizerRequests(Tokenizer tokenizer, string? template = null, TemplateOptions? options = null)
{
    // Keys of a chat line that are apply_chat_template arguments; every other key goes to the template as a variable.
    private static readonly HashSet<string> ChatKeys = ["messages", "add_generation_prompt", "continue_final_message", "tools", "documents", "chat_template", "labels"];

    // Built on the first training line: text and chat lines never need the named template.
    private readonly Lazy<ChatTemplate> _template = new(() => ChatTemplate.FromTokenizer(tokenizer, template));

    /// <summary>Answers every request line of <paramref name="reader"/> on <paramref name="writer"/>; blank lines are skipped.</summary>
    public void Run(TextReader reader, TextWriter writer)
    {
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            writer.WriteLine(Respond(line, lineNumber));
            writer.Flush(); // one line out per line in, as it happens: callers stream through pipes
        }
    }

    /// <summary>The response line for request line <paramref name="lineNumber"/> (1-based, for messages): a result or {"error": ...}.</summary>
    public string Respond(string line, int lineNumber)
    {
        try
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new LineError($"line {lineNumber} is not valid JSON ({FirstSentence(e.Message)})");
            }
            if (node is not JsonObject obj) throw new LineError($"line {lineNumber} is not a JSON object; give {{\"text\": ...}} or {{\"messages\": [...]}}");

            var hasText = obj.ContainsKey("text");
            var hasMessages = obj.ContainsKey("messages");
            if (hasText && hasMessages) throw new LineError($"line {lineNumber} has both \"text\" and \"messages\"; give one");
            if (hasText) return EncodeText(obj, lineNumber);
            if (hasMessages && Bool(obj, "labels", false, lineNumber)) return EncodeTraining(obj, lineNumber);
            if (hasMessages) return RenderChat(obj, lineNumber);
            throw new LineError($"line {lineNumber} has neither \"text\" nor \"messages\"");
        }
        catch (LineError e)
        {
            return ErrorLine(e.Message + ".");
        }
        catch (OspreyException e) // the tokenizer's or the template's own error (raise_exception included)
        {
            return ErrorLine($"line {lineNumber}: {e.Message.TrimEnd('.')}.");
        }
    }

    private string EncodeText(JsonObject obj, int lineNumber)
    {
        var text = obj["text"] is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw new LineError($"line {lineNumber} has a \"text\" that is not a string");
        var addSpecial = Bool(obj, "add_special_tokens", true, lineNumber);
        foreach (var (key, _) in obj)
            if (key is not ("text" or "add_special_tokens"))
                throw new LineError($"line {lineNumber} has the key \"{key}\", which a text line does not take (only \"text\" and \"add_special_tokens\")");
        var ids = tokenizer.EncodeIds(text, addSpecial);
        var sb = new StringBuilder("{\"ids\":");
        JsonText.AppendInts(sb, ids);
        sb.Append(",\"decoded\":");
        JsonText.AppendString(sb, tokenizer.Decode(ids));
        return sb.Append('}').ToString();
    }

    /// <summary>A training line: the conversation as the trainer sees it, with -100 labels where no loss is taken.</summary>
    private string EncodeTraining(JsonObject obj, int lineNumber)
    {
        if (obj["messages"] is not JsonArray) throw new LineError($"line {lineNumber} has \"messages\" that is not a list of messages");
        var row = new JsonObject();
        var extra = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in obj)
        {
            if (key is "messages" or "tools") row[key] = value?.DeepClone();
            else if (key is "add_generation_prompt" or "continue_final_message" or "documents" or "chat_template")
                throw new LineError($"line {lineNumber} has \"{key}\", which a training line (\"labels\": true) does not take");
            else if (key != "labels") extra[key] = Element(value);
        }
        using var doc = JsonDocument.Parse(row.ToJsonString());
        var encoded = _template.Value.Encode(tokenizer, Conversation.FromJson(doc.RootElement), new TemplateOptions
        {
            System = options?.System,
            LossScale = options?.LossScale ?? LossScale.Default,
            Extra = extra,
        });
        var sb = new StringBuilder("{\"text\":");
        JsonText.AppendString(sb, encoded.Text);
        sb.Append(",\"ids\":");
        JsonText.AppendInts(sb, encoded.InputIds);
        sb.Append(",\"labels\":");
        JsonText.AppendInts(sb, encoded.Labels);
        return sb.Append('}').ToString();
    }

    private string RenderChat(JsonObject obj, int lineNumber)
    {
        var messages = obj["messages"] is JsonArray array
            ? Elements(array)
            : throw new LineError($"line {lineNumber} has \"messages\" that is not a list of messages");
        var tools = OptionalList(obj, "tools", lineNumber);
        var documents = OptionalList(obj, "documents", lineNumber);
        string? template = null;
        if (obj["chat_template"] is { } t)
        {
            template = t is JsonValue tv && tv.GetValueKind() == JsonValueKind.String
                ? tv.GetValue<string>()
                : throw new LineError($"line {lineNumber} has a \"chat_template\" that is not a string");
        }
        var extra = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in obj)
            if (!ChatKeys.Contains(key))
                extra[key] = Element(value);

        var rendered = tokenizer.ApplyChatTemplate(messages, new ChatTemplateOptions
        {
            AddGenerationPrompt = Bool(obj, "add_generation_prompt", false, lineNumber),
            ContinueFinalMessage = Bool(obj, "continue_final_message", false, lineNumber),
            Tools = tools,
            Documents = documents,
            ChatTemplate = template,
            Extra = extra,
        });
        var ids = tokenizer.EncodeIds(rendered, addSpecialTokens: false);
        var sb = new StringBuilder("{\"text\":");
        JsonText.AppendString(sb, rendered);
        sb.Append(",\"ids\":");
        JsonText.AppendInts(sb, ids);
        return sb.Append('}').ToString();
    }

    private static string ErrorLine(string message)
    {
        var sb = new StringBuilder("{\"error\":");
        JsonText.AppendString(sb, message);
        return sb.Append('}').ToString();
    }

    private static bool Bool(JsonObject obj, string key, bool defaultValue, int lineNumber)
    {
        if (!obj.TryGetPropertyValue(key, out var node) || node is null) return defaultValue;
        return node.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new LineError($"line {lineNumber} has \"{key}\": {node.ToJsonString()}, which is not true or false"),
        };
    }

    private static List<object?>? OptionalList(JsonObject obj, string key, int lineNumber)
    {
        if (!obj.TryGetPropertyValue(key, out var node) || node is null) return null;
        return node is JsonArray array ? Elements(array) : throw new LineError($"line {lineNumber} has \"{key}\" that is not a list");
    }

    private static List<object?> Elements(JsonArray array) => array.Select(Element).ToList();

    // The tokenizer takes JsonElements for JSON values.
    private static object? Element(JsonNode? node) => node is null ? null : JsonSerializer.SerializeToElement(node);

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(". ", StringComparison.Ordinal);
        return (cut < 0 ? message : message[..cut]).TrimEnd('.');
    }

    /// <summary>A problem with one input line; its message is the sentence to report, without the final period.</summary>
    private sealed class LineError(string message) : Exception(message);
}
