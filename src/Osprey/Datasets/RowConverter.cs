using System.Globalization;
using System.Text.Json;
using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>
/// Detects a dataset's format from its first readable row and converts rows to <see cref="DatasetRow"/>s:
/// explicit <c>--columns</c> renames first, then the automatic column mapping (unless disabled), then the format's
/// conversion. Facts from ms-swift: the synonym lists of the automatic mapping, the rule that a mapping is dropped
/// when two columns of a row map to the same name, Alpaca's "instruction\ninput" query, ShareGPT role names.
/// </summary>
internal sealed class RowConverter
{
    // The automatic column mapping (ms-swift's lists, matched case-insensitively).
    private static readonly string[] SystemKeys = ["system", "system_prompt"];
    private static readonly string[] QueryKeys = ["query", "prompt", "input", "instruction", "question"];
    private static readonly string[] ResponseKeys = ["response", "answer", "output", "targets", "target", "answer_key", "solution", "text", "completion", "content"];
    private static readonly string[] MessageKeys = ["messages", "conversation", "conversations"];

    private enum Kind { Messages, ShareGpt, Alpaca, QueryResponse, ChosenRejected, Text }

    private readonly DatasetOptions _options;
    private readonly bool _selfCognition;
    private readonly IReadOnlyDictionary<string, string>? _columns;
    private Kind? _kind;
    private bool _kto;
    private bool _preference;

    public RowConverter(DatasetOptions options, IReadOnlyDictionary<string, string>? columns, bool selfCognition)
    {
        _options = options;
        _columns = columns;
        _selfCognition = selfCognition;
    }

    /// <summary>The detected format, once a row has been converted.</summary>
    public DatasetFormat? Format { get; private set; }

    /// <summary>True when self-cognition placeholders were met but --model_name/--model_author were not given.</summary>
    public bool MissingModelName { get; private set; }

    /// <summary>Converts one readable row; a <see cref="RowError"/> says what is wrong with it.</summary>
    public DatasetRow Convert(RawRow raw)
    {
        var row = new Dictionary<string, object?>(raw.Fields!, StringComparer.Ordinal);
        if (_columns is { Count: > 0 } columns)
        {
            foreach (var (src, dst) in columns)
            {
                if (src == dst || !row.Remove(src, out var value)) continue;
                if (dst is "-" or "_" or "") continue; // ms-swift drops a column mapped to "-"/"_"
                row[dst] = value;
            }
        }
        if (!_options.DisableAutoColumnMapping) LowerCaseKnownKeys(row);
        if (_kind is null) Detect(row);
        var kind = _kind!.Value;
        if (!_options.DisableAutoColumnMapping) AutoMap(row, kind);

        switch (kind)
        {
            case Kind.Text:
            {
                var text = RequiredString(row, "text");
                return new DatasetRow(raw.Source, raw.Line, DatasetFormat.Text, null, text);
            }
            case Kind.ChosenRejected:
                return ChosenRejected(raw, row);
        }

        var messages = kind switch
        {
            Kind.Messages or Kind.ShareGpt => MessagesOf(row, "messages"),
            Kind.Alpaca => Alpaca(row),
            _ => QueryResponse(row),
        };
        var tools = Tools(row);
        Substitute(row, messages);
        Validate(messages, "messages");
        var conversation = new Conversation(messages, tools);

        if (_kto)
        {
            var label = Label(row);
            return new DatasetRow(raw.Source, raw.Line, DatasetFormat.Kto, conversation, null, KtoLabel: label);
        }
        if (_preference)
        {
            List<object?> rejected;
            if (row.TryGetValue("rejected_messages", out var rm) && rm is not null)
            {
                rejected = MessagesOf(row, "rejected_messages");
                Substitute(row, rejected);
                Validate(rejected, "rejected_messages");
            }
            else
            {
                var reply = RequiredString(row, "rejected_response");
                rejected = [.. messages.Take(messages.Count - 1), Message("assistant", reply)];
                Substitute(row, rejected);
            }
            return new DatasetRow(raw.Source, raw.Line, DatasetFormat.Preference, conversation, null, new Conversation(rejected, tools), Margin: Margin(row));
        }
        return new DatasetRow(raw.Source, raw.Line, Format!.Value, conversation, null);
    }

    private void Detect(Dictionary<string, object?> row)
    {
        bool Has(string key) => row.Keys.Any(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase));
        var auto = !_options.DisableAutoColumnMapping;
        Kind kind;
        var messageKey = (auto ? MessageKeys : ["messages", "conversations"]).FirstOrDefault(Has);
        if (messageKey is not null)
        {
            var list = Parsed(row.First(kv => string.Equals(kv.Key, messageKey, StringComparison.OrdinalIgnoreCase)).Value) as List<object?>;
            var first = list?.FirstOrDefault() as Dictionary<string, object?>;
            kind = first is not null && !first.ContainsKey("role") && !first.ContainsKey("content") ? Kind.ShareGpt : Kind.Messages;
        }
        else if (Has("chosen") && Has("rejected")) kind = Kind.ChosenRejected;
        else if (Has("instruction") && (Has("output") || Has("input")) && !Has("query")) kind = Kind.Alpaca;
        else
        {
            var probe = new Dictionary<string, object?>(row, StringComparer.Ordinal);
            if (auto) AutoMap(probe, Kind.QueryResponse);
            var hasQuery = probe.ContainsKey("query") || probe.ContainsKey("history") || probe.Keys.Any(k => QueryKeys.Contains(k.ToLowerInvariant()));
            if (probe.ContainsKey("response") && hasQuery) kind = Kind.QueryResponse;
            else if (!hasQuery && (probe.ContainsKey("response") || row.ContainsKey("text"))) kind = Kind.Text;
            else
                throw new RowError(
                    "matches no dataset format: its fields are " + string.Join(", ", row.Keys.Select(k => $"\"{k}\"")) +
                    "; give \"messages\", \"conversations\", instruction/output, query/response, \"text\", chosen/rejected, or rename your fields with --columns '{\"your_field\": \"query\"}'",
                    row.Keys.FirstOrDefault());
        }
        _kind = kind;
        _kto = kind != Kind.Text && Has("label");
        _preference = kind == Kind.ChosenRejected || Has("rejected_response") || Has("rejected_messages");
        Format = _kto ? DatasetFormat.Kto
            : _preference ? DatasetFormat.Preference
            : kind switch
            {
                Kind.Messages => DatasetFormat.Messages,
                Kind.ShareGpt => DatasetFormat.ShareGpt,
                Kind.Alpaca => DatasetFormat.Alpaca,
                Kind.QueryResponse => DatasetFormat.QueryResponse,
                _ => DatasetFormat.Text,
            };
    }

    private static readonly HashSet<string> KnownKeys =
    [
        "messages", "conversation", "conversations", "system", "system_prompt", "instruction", "input", "output", "query", "prompt", "question",
        "response", "answer", "targets", "target", "answer_key", "solution", "text", "completion", "content", "history", "chosen", "rejected",
        "rejected_response", "rejected_messages", "label", "margin", "tools", "tag",
    ];

    /// <summary>Column names match case-insensitively (as ms-swift's): "Instruction" is read as "instruction".</summary>
    private static void LowerCaseKnownKeys(Dictionary<string, object?> row)
    {
        foreach (var key in row.Keys.ToList())
        {
            var lower = key.ToLowerInvariant();
            if (lower != key && KnownKeys.Contains(lower) && !row.ContainsKey(lower))
            {
                row.Remove(key, out var value);
                row[lower] = value;
            }
        }
    }

    /// <summary>ms-swift's automatic column mapping for the dataset's kind; a name two columns map to is left alone.</summary>
    private static void AutoMap(Dictionary<string, object?> row, Kind kind)
    {
        var mapping = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var k in SystemKeys) mapping[k] = "system";
        switch (kind)
        {
            case Kind.Messages or Kind.ShareGpt:
                foreach (var k in MessageKeys) mapping[k] = "messages";
                break;
            case Kind.QueryResponse or Kind.Text:
                foreach (var k in QueryKeys) mapping[k] = "query";
                foreach (var k in ResponseKeys) mapping[k] = kind == Kind.Text ? "text" : "response";
                break;
            case Kind.ChosenRejected:
                foreach (var k in QueryKeys) mapping[k] = "prompt";
                break;
        }
        var present = row.Keys.Where(k => mapping.ContainsKey(k.ToLowerInvariant())).ToList();
        var targets = present.GroupBy(k => mapping[k.ToLowerInvariant()]).ToDictionary(g => g.Key, g => g.Count());
        foreach (var key in present)
        {
            var target = mapping[key.ToLowerInvariant()];
            if (targets[target] > 1 || key == target) continue;
            row.Remove(key, out var value);
            row[target] = value;
        }
    }

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

    private static Dictionary<string, object?> Message(string role, object? content) => new(StringComparer.Ordinal) { ["role"] = role, ["content"] = content };

    private static string? Role(object? message) => (message as Dictionary<string, object?>)?.GetValueOrDefault("role") as string;

    private static string RequiredString(Dictionary<string, object?> row, string field)
    {
        if (!row.TryGetValue(field, out var value) || value is null)
            throw new RowError($"field \"{field}\" is missing; add it (or map a field of yours to it with --columns '{{\"your_field\": \"{field}\"}}')", field);
        return value switch
        {
            string s => s,
            long or double => System.Convert.ToString(value, CultureInfo.InvariantCulture)!,
            _ => throw new RowError($"field \"{field}\" must be a string, got {TypeName(value)}", field),
        };
    }

    private static string? OptionalString(Dictionary<string, object?> row, string field) =>
        row.GetValueOrDefault(field) switch
        {
            null => null,
            string s => s,
            long or double => System.Convert.ToString(row[field], CultureInfo.InvariantCulture),
            var other => throw new RowError($"field \"{field}\" must be a string, got {TypeName(other)}", field),
        };

    /// <summary>A list or object stored as a JSON string (CSV cells, some hub datasets), parsed; anything else as is.</summary>
    private static object? Parsed(object? value)
    {
        if (value is not string s) return value;
        var t = s.TrimStart();
        if (t.Length == 0 || (t[0] != '[' && t[0] != '{')) return value;
        try
        {
            using var doc = JsonDocument.Parse(s);
            return Plain.From(doc.RootElement);
        }
        catch (JsonException)
        {
            return value;
        }
    }

    private static string TypeName(object? value) => value switch
    {
        null => "null",
        string => "a string",
        bool => "a boolean",
        long or double => "a number",
        List<object?> => "a list",
        Dictionary<string, object?> => "an object",
        _ => value.GetType().Name,
    };

    private static string Show(object? value) => value is string s ? $"\"{s}\"" : System.Convert.ToString(value, CultureInfo.InvariantCulture) ?? "null";
}
