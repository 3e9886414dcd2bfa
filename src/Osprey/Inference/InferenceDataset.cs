using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Inference;

/// <summary>
/// Reads ms-swift inference datasets (<c>--val_dataset</c>): JSON lines (or one JSON array) of rows in
/// messages format <c>{"messages": [{"role": ..., "content": ...}, ...]}</c> or query format
/// <c>{"query": ..., "response"?: ..., "history"?: [[q, r], ...], "system"?: ...}</c>. Either may carry
/// <c>"tools"</c>. A final assistant message (or the query format's <c>response</c>) is the label: it is not
/// part of the prompt.
/// </summary>
/// <remarks>
/// Not <c>Datasets.RowConverter</c>: that reader shapes training rows (every conversation must end with the
/// assistant's reply, and ms-swift's automatic column mapping reads "prompt" or "instruction" as a query), while an
/// inference row ends with the user's turn, keeps its record as read for the output, and accepts only the two
/// formats <c>osprey infer</c> documents.
/// </remarks>
public static class InferenceDataset
{
    /// <summary>All rows of <paramref name="path"/>; <paramref name="system"/> (--system) becomes the system message of rows that have none.</summary>
    public static List<InferenceRow> Read(string path, string? system)
    {
        if (!File.Exists(path)) throw new OspreyException($"--val_dataset {path} does not exist; pass a JSON-lines file of {{\"messages\": [...]}} or {{\"query\": ...}} rows.");
        var rows = new List<InferenceRow>();
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            JsonNode? root;
            try
            {
                root = JsonNode.Parse(File.ReadAllText(path));
            }
            catch (JsonException e)
            {
                throw new OspreyException($"{path} is not valid JSON ({e.Message.TrimEnd('.')}); a .json dataset is one array of rows, a .jsonl dataset one row per line.", e);
            }
            if (root is not JsonArray array) throw new OspreyException($"{path} does not hold a JSON array of rows; a .json dataset is one array, a .jsonl dataset one row per line.");
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
                throw new OspreyException($"{where} is not valid JSON ({e.Message.Split(". ")[0].TrimEnd('.')}); fix or remove the line.", e);
            }
            rows.Add(Row(node, where, system));
        }
        return rows;
    }

    /// <summary>Parses one row.</summary>
    public static InferenceRow Row(JsonNode? node, string where, string? system)
    {
        if (node is not JsonObject record)
            throw new OspreyException($"{where} is not a JSON object; give {{\"messages\": [...]}} or {{\"query\": \"...\"}}.");
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
            throw new OspreyException($"{where} has neither \"messages\" nor \"query\"; give {{\"messages\": [{{\"role\": \"user\", \"content\": \"...\"}}]}} or {{\"query\": \"...\"}}.");
        }

        if (system is not null && (messages.Count == 0 || Role(messages[0]) != "system")) SetSystem(messages, system);
        return new InferenceRow(record, messages, tools, where, queryFormat);
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

    /// <summary>The prompt ids of a row: its conversation rendered with the generation prompt; a template error names the row.</summary>
    public static int[] Encode(ChatPrompt chat, InferenceRow row)
    {
        try
        {
            return chat.Encode(row.Messages, row.Tools);
        }
        catch (OspreyException e)
        {
            throw new OspreyException($"{row.Where}: {e.Message.TrimEnd('.')}.", e);
        }
    }

    /// <summary>
    /// A row's whole conversation for a reward model: its messages (final assistant reply included; a query row's
    /// "response" as the reply), no generation prompt.
    /// </summary>
    public static int[] EncodeScored(ChatPrompt chat, InferenceRow row, string? system)
    {
        var messages = new List<object?>();
        if (!row.QueryFormat && row.Record["messages"] is JsonArray all)
        {
            messages.AddRange(all.Select(m => (object?)JsonSerializer.SerializeToElement(m)));
            if (system is not null) SetSystem(messages, system);
        }
        else
        {
            messages.AddRange(row.Messages);
            if (row.Record["response"] is JsonValue r && r.TryGetValue<string>(out var reply)) messages.Add(Message("assistant", reply));
        }
        try
        {
            return chat.EncodeRendered(chat.Tokenizer.ApplyChatTemplate(messages, new Tokenization.ChatTemplateOptions { AddGenerationPrompt = false, Tools = row.Tools }));
        }
        catch (OspreyException e)
        {
            throw new OspreyException($"{row.Where}: {e.Message.TrimEnd('.')}.", e);
        }
    }

    /// <summary>The row as read plus "response"; a query-format row's own "response" (its label) moves to "labels".</summary>
    public static JsonObject Answered(InferenceRow row, string response)
    {
        var record = (JsonObject)row.Record.DeepClone();
        if (row.QueryFormat && record.ContainsKey("response") && !record.ContainsKey("labels"))
        {
            var label = record["response"]?.DeepClone();
            record.Remove("response");
            record["labels"] = label;
        }
        record["response"] = response;
        return record;
    }

    private static List<object?> FromMessages(JsonObject record, string where)
    {
        if (record["messages"] is not JsonArray array || array.Count == 0)
            throw new OspreyException($"{where} has \"messages\" that is not a non-empty list of {{\"role\": ..., \"content\": ...}} objects.");
        var messages = new List<object?>();
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject m || m["role"] is not JsonValue role || role.GetValueKind() != JsonValueKind.String)
                throw new OspreyException($"{where} has message {i + 1} without a string \"role\"; each message is {{\"role\": ..., \"content\": ...}}.");
            messages.Add(JsonSerializer.SerializeToElement(m));
        }
        // ms-swift treats a final assistant message as the label: it stays in the record, not in the prompt.
        if (Role(messages[^1]) == "assistant") messages.RemoveAt(messages.Count - 1);
        if (messages.Count == 0 || messages.All(m => Role(m) == "system"))
            throw new OspreyException($"{where} has no user message to answer; end \"messages\" with a user turn.");
        return messages;
    }

    private static List<object?> FromQuery(JsonObject record, string where)
    {
        var query = String(record, "query", where)
            ?? throw new OspreyException($"{where} has a null \"query\"; give the user's text.");
        var messages = new List<object?>();
        if (String(record, "system", where) is { } system) messages.Add(Message("system", system));
        if (record["history"] is { } history)
        {
            if (history is not JsonArray turns)
                throw new OspreyException($"{where} has \"history\" that is not a list of [query, response] pairs.");
            for (var i = 0; i < turns.Count; i++)
            {
                if (turns[i] is not JsonArray { Count: 2 } pair || !IsString(pair[0]) || !IsString(pair[1]))
                    throw new OspreyException($"{where} has history entry {i + 1} that is not a [query, response] pair of strings.");
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
                throw new OspreyException($"{where} has \"tools\" as a string that is not JSON ({e.Message.Split(". ")[0].TrimEnd('.')}).", e);
            }
        }
        return node is JsonArray array
            ? array.Select(t => (object?)JsonSerializer.SerializeToElement(t)).ToList()
            : throw new OspreyException($"{where} has \"tools\" that is not a list of tool schemas.");
    }

    private static string? String(JsonObject record, string key, string where)
    {
        if (!record.TryGetPropertyValue(key, out var node) || node is null) return null;
        return IsString(node) ? node.GetValue<string>() : throw new OspreyException($"{where} has \"{key}\" that is not a string.");
    }

    private static bool IsString(JsonNode? node) => node is JsonValue v && v.GetValueKind() == JsonValueKind.String;

    private static string? Role(object? message) => message switch
    {
        JsonElement { ValueKind: JsonValueKind.Object } e when e.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String => r.GetString(),
        IReadOnlyDictionary<string, object?> d when d.TryGetValue("role", out var r) => r as string,
        _ => null,
    };
}
