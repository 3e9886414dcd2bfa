using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Cli.Chat;

/// <summary>One row of an inference dataset: the record as read, the conversation to prompt with and its tools.</summary>
/// <param name="Record">The input object, written back out with the response added.</param>
/// <param name="Messages">The prompt conversation (a final assistant message, the label, removed).</param>
/// <param name="Tools">Tool schemas of the row, or null.</param>
/// <param name="Where">"FILE line N", for error messages.</param>
/// <param name="QueryFormat">True for ms-swift's query/response/history rows.</param>
internal sealed record ChatRow(JsonObject Record, List<object?> Messages, List<object?>? Tools, string Where, bool QueryFormat);

/// <summary>
/// Reads ms-swift inference datasets (<c>--val_dataset</c>): JSON lines (or one JSON array) of rows in
/// messages format <c>{"messages": [{"role": ..., "content": ...}, ...]}</c> or query format
/// <c>{"query": ..., "response"?: ..., "history"?: [[q, r], ...], "system"?: ...}</c>. Either may carry
/// <c>"tools"</c>. A final assistant message (or the query format's <c>response</c>) is the label: it is not
/// part of the prompt.
/// </summary>
internal static class ChatDataset
{
    /// <summary>All rows of <paramref name="path"/>; <paramref name="system"/> (--system) becomes the system message of rows that have none.</summary>
    public static List<ChatRow> Read(string path, string? system)
    {
        if (!File.Exists(path)) throw new UserError($"--val_dataset {path} does not exist; pass a JSON-lines file of {{\"messages\": [...]}} or {{\"query\": ...}} rows.");
        var rows = new List<ChatRow>();
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            JsonNode? root;
            try
            {
                root = JsonNode.Parse(File.ReadAllText(path));
            }
            catch (JsonException e)
            {
                throw new UserError($"{path} is not valid JSON ({e.Message.TrimEnd('.')}); a .json dataset is one array of rows, a .jsonl dataset one row per line.", e);
            }
            if (root is not JsonArray array) throw new UserError($"{path} does not hold a JSON array of rows; a .json dataset is one array, a .jsonl dataset one row per line.");
            for (var i = 0; i < array.Count; i++)
                rows.Add(Row(array[i], $"{path} row {i + 1}", system));
            return rows;
        }

        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var where = $"{path} line {lineNumber}";
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new UserError($"{where} is not valid JSON ({e.Message.Split(". ")[0].TrimEnd('.')}); fix or remove the line.", e);
            }
            rows.Add(Row(node, where, system));
        }
        return rows;
    }

    /// <summary>Parses one row.</summary>
    public static ChatRow Row(JsonNode? node, string where, string? system)
    {
        if (node is not JsonObject record)
            throw new UserError($"{where} is not a JSON object; give {{\"messages\": [...]}} or {{\"query\": \"...\"}}.");
        var tools = Tools(record, where);
        List<object?> messages;
        bool queryFormat;
        if (record.ContainsKey("messages"))
        {
            messages = FromMessages(record, where);
            queryFormat = false;
        }
        else if (record.ContainsKey("query"))
        {
            messages = FromQuery(record, where);
            queryFormat = true;
        }
        else
        {
            throw new UserError($"{where} has neither \"messages\" nor \"query\"; give {{\"messages\": [{{\"role\": \"user\", \"content\": \"...\"}}]}} or {{\"query\": \"...\"}}.");
        }

        if (system is not null && (messages.Count == 0 || Role(messages[0]) != "system")) SetSystem(messages, system);
        return new ChatRow(record, messages, tools, where, queryFormat);
    }

    /// <summary>Replaces the first message when it is a system message, else inserts one at the start.</summary>
    public static void SetSystem(List<object?> messages, string system)
    {
        var message = Message("system", system);
        if (messages.Count > 0 && Role(messages[0]) == "system") messages[0] = message;
        else messages.Insert(0, message);
    }

    /// <summary>A message as the chat template sees it.</summary>
    public static Dictionary<string, object?> Message(string role, object? content) =>
        new(StringComparer.Ordinal) { ["role"] = role, ["content"] = content };

    private static List<object?> FromMessages(JsonObject record, string where)
    {
        if (record["messages"] is not JsonArray array || array.Count == 0)
            throw new UserError($"{where} has \"messages\" that is not a non-empty list of {{\"role\": ..., \"content\": ...}} objects.");
        var messages = new List<object?>();
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject m || m["role"] is not JsonValue role || role.GetValueKind() != JsonValueKind.String)
                throw new UserError($"{where} has message {i + 1} without a string \"role\"; each message is {{\"role\": ..., \"content\": ...}}.");
            messages.Add(JsonSerializer.SerializeToElement(m));
        }
        // ms-swift treats a final assistant message as the label: it stays in the record, not in the prompt.
        if (Role(messages[^1]) == "assistant") messages.RemoveAt(messages.Count - 1);
        if (messages.Count == 0 || messages.All(m => Role(m) == "system"))
            throw new UserError($"{where} has no user message to answer; end \"messages\" with a user turn.");
        return messages;
    }

    private static List<object?> FromQuery(JsonObject record, string where)
    {
        var query = String(record, "query", where)
            ?? throw new UserError($"{where} has a null \"query\"; give the user's text.");
        var messages = new List<object?>();
        if (String(record, "system", where) is { } system) messages.Add(Message("system", system));
        if (record["history"] is { } history)
        {
            if (history is not JsonArray turns)
                throw new UserError($"{where} has \"history\" that is not a list of [query, response] pairs.");
            for (var i = 0; i < turns.Count; i++)
            {
                if (turns[i] is not JsonArray { Count: 2 } pair || !IsString(pair[0]) || !IsString(pair[1]))
                    throw new UserError($"{where} has history entry {i + 1} that is not a [query, response] pair of strings.");
                messages.Add(Message("user", pair[0]!.GetValue<string>()));
                messages.Add(Message("assistant", pair[1]!.GetValue<string>()));
            }
        }
        messages.Add(Message("user", query));
        return messages;
    }

    private static List<object?>? Tools(JsonObject record, string where)
    {
        if (!record.TryGetPropertyValue("tools", out var node) || node is null) return null;
        // ms-swift datasets often hold tools as a JSON string.
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            try
            {
                node = JsonNode.Parse(v.GetValue<string>());
            }
            catch (JsonException e)
            {
                throw new UserError($"{where} has \"tools\" as a string that is not JSON ({e.Message.Split(". ")[0].TrimEnd('.')}).", e);
            }
        }
        return node is JsonArray array
            ? array.Select(t => (object?)JsonSerializer.SerializeToElement(t)).ToList()
            : throw new UserError($"{where} has \"tools\" that is not a list of tool schemas.");
    }

    private static string? String(JsonObject record, string key, string where)
    {
        if (!record.TryGetPropertyValue(key, out var node) || node is null) return null;
        return IsString(node) ? node.GetValue<string>() : throw new UserError($"{where} has \"{key}\" that is not a string.");
    }

    private static bool IsString(JsonNode? node) => node is JsonValue v && v.GetValueKind() == JsonValueKind.String;

    private static string? Role(object? message) => message switch
    {
        JsonElement { ValueKind: JsonValueKind.Object } e when e.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String => r.GetString(),
        IReadOnlyDictionary<string, object?> d when d.TryGetValue("role", out var r) => r as string,
        _ => null,
    };
}
