using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>
/// Detects a dataset's format from its first readable row and converts rows to <see cref="DatasetRow"/>s:
/// explicit <c>--columns</c> renames first, then the automatic column mapping (unless disabled), then the format's
/// conversion. Facts from ms-swift: the synonym lists of the automatic mapping, the rule that a mapping is dropped
/// when two columns of a row map to the same name, Alpaca's "instruction\ninput" query, ShareGPT role names.
/// </summary>
internal sealed partial class RowConverter
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
}
