using Osprey.Templates;

namespace Osprey.Datasets;

// Per-format conversion: Alpaca, query/response, messages and ShareGPT, preference rows, and self-cognition placeholders.
internal sealed partial class RowConverter
{
    private List<object?> Alpaca(Dictionary<string, object?> row)
    {
        var instruction = OptionalString(row, "instruction") ?? "";
        var input = OptionalString(row, "input") ?? "";
        if (!row.ContainsKey("instruction") && !row.ContainsKey("input"))
            throw new RowError("field \"instruction\" is missing; every Alpaca row needs \"instruction\" and \"output\"", "instruction");
        var query = input.Length > 0 ? (instruction.Length > 0 ? instruction + "\n" + input : input) : instruction;
        var output = RequiredString(row, "output");
        return Conversation(OptionalString(row, "system"), History(row), query, output);
    }

    private List<object?> QueryResponse(Dictionary<string, object?> row)
    {
        var response = RequiredString(row, "response");
        var query = OptionalString(row, "query");
        if (query is null && !row.ContainsKey("query"))
            throw new RowError("field \"query\" is missing; every query/response row needs \"query\" and \"response\" (or map your fields with --columns)", "query");
        return Conversation(OptionalString(row, "system"), History(row), query ?? "", response);
    }

    private static List<object?> Conversation(string? system, List<(string Query, string Response)> history, string query, string response)
    {
        var messages = new List<object?>();
        if (!string.IsNullOrEmpty(system)) messages.Add(Message("system", system));
        foreach (var (q, r) in history)
        {
            messages.Add(Message("user", q));
            messages.Add(Message("assistant", r));
        }
        messages.Add(Message("user", query));
        messages.Add(Message("assistant", response));
        return messages;
    }

    private static List<(string, string)> History(Dictionary<string, object?> row)
    {
        if (!row.TryGetValue("history", out var value) || value is null) return [];
        if (Parsed(value) is not List<object?> list)
            throw new RowError("field \"history\" must be a list of [query, response] pairs", "history");
        var result = new List<(string, string)>();
        foreach (var pair in list)
        {
            if (pair is not List<object?> { Count: 2 } p || p[0] is not string q || p[1] is not string r)
                throw new RowError("field \"history\" must be a list of [query, response] pairs of strings", "history");
            result.Add((q, r));
        }
        return result;
    }

    private DatasetRow ChosenRejected(RawRow raw, Dictionary<string, object?> row)
    {
        var chosen = Parsed(row.GetValueOrDefault("chosen"));
        var rejected = Parsed(row.GetValueOrDefault("rejected"));
        var tools = Tools(row);
        List<object?> chosenMessages, rejectedMessages;
        if (chosen is List<object?>)
        {
            row["chosen"] = chosen;
            row["rejected"] = rejected;
            chosenMessages = MessagesOf(row, "chosen");
            rejectedMessages = MessagesOf(row, "rejected");
            var prompt = OptionalString(row, "prompt");
            // Lists holding only the replies: the prompt goes first.
            if (prompt is not null && chosenMessages.All(m => Role(m) == "assistant"))
            {
                chosenMessages.Insert(0, Message("user", prompt));
                rejectedMessages.Insert(0, Message("user", prompt));
            }
            var system = OptionalString(row, "system");
            if (!string.IsNullOrEmpty(system) && Role(chosenMessages.FirstOrDefault()) != "system")
            {
                chosenMessages.Insert(0, Message("system", system));
                rejectedMessages.Insert(0, Message("system", system));
            }
        }
        else
        {
            if (chosen is not string c)
                throw new RowError(chosen is null ? "field \"chosen\" is missing; a preference row needs \"chosen\" and \"rejected\" replies" : "field \"chosen\" must be a string or a list of messages", "chosen");
            if (rejected is not string r)
                throw new RowError(rejected is null ? "field \"rejected\" is missing; a preference row needs \"chosen\" and \"rejected\" replies" : "field \"rejected\" must be a string like \"chosen\"", "rejected");
            var prompt = OptionalString(row, "prompt") ?? throw new RowError("field \"prompt\" is missing; a preference row with string replies needs the \"prompt\" they answer", "prompt");
            chosenMessages = Conversation(OptionalString(row, "system"), History(row), prompt, c);
            rejectedMessages = Conversation(OptionalString(row, "system"), History(row), prompt, r);
        }
        Substitute(row, chosenMessages);
        Substitute(row, rejectedMessages);
        Validate(chosenMessages, "chosen");
        Validate(rejectedMessages, "rejected");
        var conversation = new Conversation(chosenMessages, tools);
        if (_kto) return new DatasetRow(raw.Source, raw.Line, DatasetFormat.Kto, conversation, null, KtoLabel: Label(row));
        return new DatasetRow(raw.Source, raw.Line, DatasetFormat.Preference, conversation, null, new Conversation(rejectedMessages, tools), Margin: Margin(row));
    }

    /// <summary>A preference row's optional "margin" (reward-model training: how much better chosen is), or null.</summary>
    private static double? Margin(Dictionary<string, object?> row) => row.GetValueOrDefault("margin") switch
    {
        null => null,
        long l => l,
        double d when double.IsFinite(d) => d,
        string s when double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) => v,
        var other => throw new RowError($"field \"margin\" must be a number, got {TypeName(other)} {Show(other)}", "margin"),
    };

    /// <summary>A list of messages in OpenAI or ShareGPT style, as standard {role, content} messages (+ the row's system).</summary>
    private static List<object?> MessagesOf(Dictionary<string, object?> row, string field)
    {
        if (!row.TryGetValue(field, out var value) || value is null)
            throw new RowError($"field \"{field}\" is missing; give the conversation as a list of {{\"role\": ..., \"content\": ...}} messages", field);
        if (Parsed(value) is not List<object?> list)
            throw new RowError($"field \"{field}\" must be a list of {{\"role\": ..., \"content\": ...}} messages, got {TypeName(value)}", field);
        var messages = new List<object?>(list.Count);
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i] is not Dictionary<string, object?> m)
                throw new RowError($"field \"{field}\" item {i} must be an object like {{\"role\": \"user\", \"content\": \"...\"}}, got {TypeName(list[i])}", field);
            var message = new Dictionary<string, object?>(StringComparer.Ordinal);
            var role = m.GetValueOrDefault("role") ?? m.GetValueOrDefault("from");
            if (role is not string r)
                throw new RowError($"field \"{field}\" item {i} has no \"role\" (or ShareGPT \"from\"); give every message a role", field);
            message["role"] = r switch
            {
                "human" => "user",
                "gpt" or "bot" => "assistant",
                "function_call" => "tool_call",
                "observation" => "tool_response",
                _ => r,
            };
            message["content"] = m.ContainsKey("content") ? m["content"] : m.GetValueOrDefault("value");
            foreach (var (k, v) in m)
                if (k is not ("role" or "from" or "content" or "value")) message[k] = v;
            messages.Add(message);
        }
        if (field == "messages" && OptionalString(row, "system") is { Length: > 0 } system && (messages.Count == 0 || Role(messages[0]) != "system"))
            messages.Insert(0, Message("system", system));
        return messages;
    }

    private static readonly HashSet<string> Roles = ["system", "user", "assistant", "tool", "tool_call", "tool_response"];

    private static void Validate(List<object?> messages, string field)
    {
        if (messages.Count == 0 || messages.All(m => Role(m) == "system"))
            throw new RowError($"field \"{field}\" is an empty conversation; give at least a user message and the assistant's reply", field);
        for (var i = 0; i < messages.Count; i++)
        {
            var m = (Dictionary<string, object?>)messages[i]!;
            var role = (string)m["role"]!;
            if (!Roles.Contains(role))
                throw new RowError($"field \"{field}\" item {i} has the role \"{role}\"; use system, user, assistant or tool (ShareGPT: human, gpt, function_call, observation)", field);
            var content = m.GetValueOrDefault("content");
            if (content is not (string or List<object?>) && !(content is null && m.ContainsKey("tool_calls")))
                throw new RowError($"field \"{field}\" item {i} ({role}) has {(content is null ? "no \"content\"" : "a \"content\" that is " + TypeName(content))}; give the message's text as a string", field);
        }
        if (Role(messages[^1]) is not ("assistant" or "tool_call"))
            throw new RowError($"field \"{field}\" ends with a {Role(messages[^1])} message; a training conversation must end with the assistant's reply", field);
    }

    private static List<object?>? Tools(Dictionary<string, object?> row)
    {
        if (!row.TryGetValue("tools", out var value) || value is null) return null;
        var parsed = Parsed(value);
        return parsed switch
        {
            List<object?> list => list,
            Dictionary<string, object?> one => [one],
            string s when string.IsNullOrWhiteSpace(s) => null,
            _ => throw new RowError("field \"tools\" must be a list of tool schemas (or a JSON string of one)", "tools"),
        };
    }

    private static bool Label(Dictionary<string, object?> row) => row.GetValueOrDefault("label") switch
    {
        bool b => b,
        long l when l is 0 or 1 => l == 1,
        string s when s.Equals("true", StringComparison.OrdinalIgnoreCase) || s == "1" => true,
        string s when s.Equals("false", StringComparison.OrdinalIgnoreCase) || s == "0" => false,
        null => throw new RowError("field \"label\" is missing; a KTO row needs \"label\": true (desirable) or false", "label"),
        var other => throw new RowError($"field \"label\" must be true or false, got {TypeName(other)} {Show(other)}", "label"),
    };

    /// <summary>self-cognition's {{NAME}}/{{AUTHOR}} placeholders, Chinese or English by the row's "tag".</summary>
    private void Substitute(Dictionary<string, object?> row, List<object?> messages)
    {
        if (!_selfCognition) return;
        var zh = row.GetValueOrDefault("tag") is string tag && tag == "zh";
        var name = zh ? _options.ModelName.Zh : _options.ModelName.En;
        var author = zh ? _options.ModelAuthor.Zh : _options.ModelAuthor.En;
        foreach (var m in messages.Cast<Dictionary<string, object?>>())
        {
            if (m.GetValueOrDefault("content") is not string content) continue;
            if (!content.Contains("{{NAME}}", StringComparison.Ordinal) && !content.Contains("{{AUTHOR}}", StringComparison.Ordinal)) continue;
            if (name is null || author is null)
            {
                MissingModelName = true;
                if (name is null && author is null) continue;
            }
            if (name is not null) content = content.Replace("{{NAME}}", name, StringComparison.Ordinal);
            if (author is not null) content = content.Replace("{{AUTHOR}}", author, StringComparison.Ordinal);
            m["content"] = content;
        }
    }
}
