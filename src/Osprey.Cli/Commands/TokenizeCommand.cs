using Osprey.Inference;
using Osprey.Serving;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Cli.Args;
using Osprey.Io;
using Osprey.Tokenization;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey tokenize</c>: a JSON-lines filter over a model's tokenizer (encode text, render and encode chat
/// templates), plus a throughput benchmark. Needs only the tokenizer files: no weights, no libtorch.
/// </summary>
internal sealed class TokenizeCommand : ICommand
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    // Keys of a chat line that are apply_chat_template arguments; every other key goes to the template as a variable.
    private static readonly HashSet<string> ChatKeys = ["messages", "add_generation_prompt", "continue_final_message", "tools", "documents", "chat_template", "labels"];

    public string Name => "tokenize";

    public string Summary => "Encode text and render chat templates with a model's tokenizer, one JSON line in, one out.";

    public string Usage =>
        "  --model DIR|ID           Folder with tokenizer.json (weights not needed), or a hub id in the local cache.\n" +
        "  --input FILE             Read JSON lines from FILE instead of stdin.\n" +
        "  --output FILE            Write JSON lines to FILE instead of stdout.\n" +
        "  --benchmark_file FILE    Instead: time encoding FILE's lines and print one JSON line of throughput.\n" +
        "  --num_threads N          Benchmark threads; 1 encodes line by line, N > 1 uses EncodeBatch (default 1).\n" +
        "  --repeat R               Benchmark passes to time after the warm-up (>= 1 pass and 1 s; default 3).\n" +
        "  --template NAME          Training lines (\"labels\": true): chat format; default the model's own template,\n" +
        "                           or chatml|qwen|qwen3|llama3|llama2|mistral|gemma|phi3|deepseek|default.\n" +
        "  --system TEXT            Training lines: system message for conversations without one.\n" +
        "  --loss_scale MODE        Training lines: default (every assistant turn) | last_round | all.\n" +
        "\n" +
        "Input lines:  {\"text\": \"...\", \"add_special_tokens\": true}            -> {\"ids\": [...], \"decoded\": \"...\"}\n" +
        "              {\"messages\": [...], \"add_generation_prompt\": true,      -> {\"text\": \"<rendered>\", \"ids\": [...]}\n" +
        "               \"tools\": [...], \"documents\": [...], other keys = template variables}\n" +
        "              {\"messages\": [...], \"labels\": true}                 -> {\"text\": ..., \"ids\": [...], \"labels\": [...]}\n" +
        "               (training encoding: labels are the ids where a token carries loss, else -100)\n" +
        "A bad line prints {\"error\": \"...\"} and the run goes on; blank lines are skipped.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, Console.In, stdout, stderr);

    public int Run(OptionReader options, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = options.String("model");
        var input = options.String("input");
        var output = options.String("output");
        var benchmark = options.String("benchmark_file");
        var threads = options.Int("num_threads", 1);
        var repeat = options.Int("repeat", 3);
        var templateName = options.String("template");
        var system = options.String("system");
        var lossScale = options.String("loss_scale", "default");
        options.EnsureNoUnknownFlags();

        if (model is null) throw new UserError("osprey tokenize needs --model; pass a folder with tokenizer.json or a hub id in the local cache.");
        if (threads < 1) throw new UserError($"--num_threads must be 1 or more, got {threads}.");
        if (repeat < 1) throw new UserError($"--repeat must be 1 or more, got {repeat}.");
        if (benchmark is not null && input is not null) throw new UserError("--benchmark_file and --input both name the input; give one.");
        if (input is not null && !File.Exists(input)) throw new UserError($"--input {input} does not exist; pass a JSON-lines file or leave --input out to read stdin.");
        if (benchmark is not null && !File.Exists(benchmark)) throw new UserError($"--benchmark_file {benchmark} does not exist; pass a text file with one document per line.");

        var folder = Hub.HubCache.ResolveModel(model);
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "pass a model folder that has its tokenizer files.");
        var training = new TrainingEncoding(tokenizer, templateName, new Templates.TemplateOptions
        {
            System = system,
            LossScale = ParseLossScale(lossScale),
        });

        TextWriter? outputFile = output is null ? null : new StreamWriter(output, append: false, Utf8);
        try
        {
            var writer = outputFile ?? stdout;
            if (benchmark is not null)
            {
                writer.WriteLine(Benchmark(tokenizer, benchmark, threads, repeat));
                writer.Flush();
                return 0;
            }

            using var inputFile = input is null ? null : new StreamReader(input, Utf8);
            var reader = inputFile ?? stdin;
            var lineNumber = 0;
            while (reader.ReadLine() is { } line)
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                writer.WriteLine(Process(tokenizer, line, lineNumber, training));
                writer.Flush(); // one line out per line in, as it happens: callers stream through pipes
            }
            return 0;
        }
        finally
        {
            outputFile?.Dispose();
        }
    }

    /// <summary>The output line for one input line: a result or {"error": ...}.</summary>
    internal static string Process(Tokenizer tokenizer, string line, int lineNumber, TrainingEncoding? training = null)
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
            if (hasText) return EncodeText(tokenizer, obj, lineNumber);
            if (hasMessages && Bool(obj, "labels", false, lineNumber))
                return EncodeTraining(training ?? new TrainingEncoding(tokenizer, null, new Templates.TemplateOptions()), obj, lineNumber);
            if (hasMessages) return RenderChat(tokenizer, obj, lineNumber);
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

    private static string EncodeText(Tokenizer tokenizer, JsonObject obj, int lineNumber)
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

    private static Templates.LossScale ParseLossScale(string value)
    {
        try
        {
            return Templates.TemplateFlags.ParseLossScale(value);
        }
        catch (OspreyException e)
        {
            throw new UserError($"--loss_scale: {e.Message}");
        }
    }

    /// <summary>How "labels": true lines are encoded: the --template chat format with --system and --loss_scale.</summary>
    internal sealed class TrainingEncoding(Tokenizer tokenizer, string? template, Templates.TemplateOptions options)
    {
        private readonly Lazy<Templates.ChatTemplate> _template = new(() => Templates.ChatTemplate.FromTokenizer(tokenizer, template));

        public Templates.EncodedConversation Encode(Templates.Conversation conversation, IReadOnlyDictionary<string, object?> extra) =>
            _template.Value.Encode(tokenizer, conversation, new Templates.TemplateOptions
            {
                System = options.System,
                LossScale = options.LossScale,
                Extra = extra,
            });
    }

    /// <summary>A training line: the conversation as the trainer sees it, with -100 labels where no loss is taken.</summary>
    private static string EncodeTraining(TrainingEncoding training, JsonObject obj, int lineNumber)
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
        var encoded = training.Encode(Templates.Conversation.FromJson(doc.RootElement), extra);
        var sb = new StringBuilder("{\"text\":");
        JsonText.AppendString(sb, encoded.Text);
        sb.Append(",\"ids\":");
        JsonText.AppendInts(sb, encoded.InputIds);
        sb.Append(",\"labels\":");
        JsonText.AppendInts(sb, encoded.Labels);
        return sb.Append('}').ToString();
    }

    private static string RenderChat(Tokenizer tokenizer, JsonObject obj, int lineNumber)
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

    /// <summary>Times encoding the file's lines; one JSON line of totals and rates.</summary>
    internal static string Benchmark(Tokenizer tokenizer, string path, int threads, int repeat)
    {
        var lines = File.ReadAllLines(path, Utf8);
        long chars = 0, bytes = 0;
        foreach (var line in lines)
        {
            chars += line.EnumerateRunes().Count();
            bytes += Utf8.GetByteCount(line);
        }

        long Pass()
        {
            long tokens = 0;
            if (threads == 1)
            {
                foreach (var line in lines) tokens += tokenizer.Encode(line, addSpecialTokens: false).Ids.Length;
            }
            else
            {
                foreach (var e in tokenizer.EncodeBatch(lines, addSpecialTokens: false, maxDegreeOfParallelism: threads)) tokens += e.Ids.Length;
            }
            return tokens;
        }

        // Warm-up (JIT tiers, BPE caches): at least one pass and at least one second, so the timed passes measure
        // steady-state code rather than the first tiers of compilation.
        var warmUp = Stopwatch.StartNew();
        var tokenCount = Pass();
        while (warmUp.Elapsed < TimeSpan.FromSeconds(1)) Pass();
        var watch = Stopwatch.StartNew();
        for (var r = 0; r < repeat; r++) Pass();
        var seconds = watch.Elapsed.TotalSeconds / repeat;

        var result = new JsonObject
        {
            ["lines"] = lines.Length,
            ["chars"] = chars,
            ["bytes"] = bytes,
            ["tokens"] = tokenCount,
            ["seconds"] = Math.Round(seconds, 6),
            ["tokens_per_s"] = Math.Round(seconds > 0 ? tokenCount / seconds : 0, 1),
            ["mb_per_s"] = Math.Round(seconds > 0 ? bytes / 1e6 / seconds : 0, 3),
            ["threads"] = threads,
        };
        return JsonText.Of(result);
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
