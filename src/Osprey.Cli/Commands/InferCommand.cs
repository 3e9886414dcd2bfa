using Osprey.Serving;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Cli.Args;
using Osprey.Cli.Chat;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Tokenization;
using Osprey.Tuners.Lora;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey infer</c>, three ways: an interactive chat on stdin (the default), a batch over a dataset
/// (<c>--val_dataset</c>, ms-swift's messages or query rows, results as JSON lines) or raw token ids
/// (<c>--input_ids</c>). Without --model it runs a built-in tiny random Llama so the whole path works with no
/// download.
/// </summary>
internal sealed class InferCommand : ICommand
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>What the interactive chat prints before reading a line, as ms-swift's does.</summary>
    internal const string Prompt = "<<< ";

    public string Name => "infer";

    public string Summary => "Chat with a model, answer a dataset, or generate from token ids (without --model: a tiny random demo model).";

    public string Usage => ModelFlags.Help + AdapterFlags.Help +
        "  --val_dataset FILE...    Answer every row of these JSON-lines files ({\"messages\": [...]} or {\"query\": ...})\n" +
        "                           instead of chatting on stdin.\n" +
        "  --result_path FILE       Write the rows with their \"response\" to FILE (default: stdout).\n" +
        "  --max_batch_size N       Rows generated together as one left-padded batch (default 1).\n" +
        "  --system TEXT            System message for rows without one (a row's own wins, as in ms-swift).\n" +
        "  --template FILE|NAME     Chat template: a Jinja file, a named template of the tokenizer, or an ms-swift name\n" +
        "                           (chatml, qwen, qwen3, llama3, llama2, mistral, gemma, phi3, deepseek, default).\n" +
        "  --input_ids IDS          Prompt token ids, comma or space separated; several prompts with ';' (batched).\n" +
        "  --save_logits FILE       With --input_ids: write the prompts' logits (float32) and ids to FILE (safetensors)\n" +
        "                           instead of generating; prompts must have equal length.\n" +
        "  --max_new_tokens N       Tokens to generate at most (default: generation_config.json, else 256).\n" +
        "  --do_sample BOOL         Sample instead of greedy decoding (default: generation_config.json, else false).\n" +
        "  --temperature X          Sampling temperature; 0 means greedy.\n" +
        "  --top_k N                Keep the N most likely tokens when sampling (0 = all).\n" +
        "  --top_p P                Nucleus sampling threshold in (0, 1].\n" +
        "  --repetition_penalty X   Penalise tokens already seen (1 = off).\n" +
        "  --seed N                 Seed for sampling (default 42).\n" +
        "  --ignore_eos BOOL        Keep generating past end-of-sequence tokens.\n" +
        "  --stream BOOL            Print the reply as it is generated (default: true in the chat, else false).\n" +
        "  --infer_backend pt       Inference engine; only the built-in 'pt' exists.\n" +
        "\n" +
        "\n" +
        "Reward models (config.json architectures *ForSequenceClassification, or --adapters with task_type SEQ_CLS) score\n" +
        "instead of generating: --val_dataset prints each row plus \"score\" (the whole conversation, final assistant\n" +
        "message included, rendered with the tokenizer's chat template and no generation prompt); --input_ids prints\n" +
        "\"[i] <score>\" per prompt. The generation flags do not apply; there is no chat.\n" +
        "\n" +
        "In the chat, 'clear' forgets the conversation and 'exit', 'quit' or end of input stop.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, Console.In, stdout, stderr);

    public int Run(OptionReader options, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var flags = ModelFlags.Read(options);
        var adapters = AdapterFlags.Read(options);
        var saveLogits = options.String("save_logits");
        var ids = options.String("input_ids");
        var datasets = options.List("val_dataset");
        var resultPath = options.String("result_path");
        var maxBatch = options.Int("max_batch_size");
        var system = options.String("system");
        var template = options.String("template");
        var maxNew = options.Int("max_new_tokens");
        var doSample = options.Bool("do_sample");
        var temperature = options.Double("temperature");
        var topK = options.Int("top_k");
        var topP = options.Double("top_p");
        var penalty = options.Double("repetition_penalty");
        var seed = options.Long("seed", 42);
        var ignoreEos = options.Bool("ignore_eos", false);
        var stream = options.Bool("stream");
        var backend = options.String("infer_backend", "pt");
        options.EnsureNoUnknownFlags();
        (flags, var adapterTemplate) = adapters.Resolve(flags, null);
        if (ids is null) template ??= adapterTemplate;
        if (saveLogits is not null && ids is null) throw new UserError("--save_logits needs the prompts as --input_ids.");
        if (backend != "pt") throw new UserError($"--infer_backend {backend} is not available; Osprey's engine is 'pt' (vllm/sglang/lmdeploy are Python-only).");

        var mode = ids is not null ? Mode.Ids : datasets.Count > 0 ? Mode.Dataset : Mode.Chat;
        if (ids is not null && datasets.Count > 0) throw new UserError("--input_ids and --val_dataset both give the prompts; use one.");
        if (maxBatch is < 1) throw new UserError($"--max_batch_size must be 1 or more, got {maxBatch}.");
        if (mode != Mode.Dataset)
        {
            var stray = new[] { ("result_path", resultPath is not null), ("max_batch_size", maxBatch is not null) }.FirstOrDefault(f => f.Item2).Item1;
            if (stray is not null) throw new UserError($"--{stray} applies to --val_dataset; add --val_dataset FILE or drop --{stray}.");
        }
        if (mode == Mode.Ids && (system ?? template) is not null)
            throw new UserError($"--{(system is not null ? "system" : "template")} shapes a chat prompt, but --input_ids gives the prompt as token ids; drop one of them.");
        if (mode == Mode.Dataset && stream == true)
        {
            if (resultPath is null) throw new UserError("--stream with --val_dataset prints the replies as they come, so the records need --result_path FILE.");
            if (maxBatch is > 1) throw new UserError("--stream prints one reply at a time; drop --stream or --max_batch_size.");
        }

        // libtorch is loaded once per process: load it for the requested device before anything touches
        // TorchSharp (the demo model is built with it), or TorchSharp would pick its own CPU library.
        Runtime.TorchRuntime.Initialize(flags.Device, stderr);
        string folder;
        if (flags.Model is null)
        {
            folder = DemoModel.EnsureCreated();
            stderr.WriteLine($"osprey: no --model given; using the built-in demo model (tiny Llama, random weights) in {folder}.");
        }
        else
        {
            folder = flags.RequireFolder();
        }

        var reward = CausalLM.IsRewardFolder(folder) || adapters.Paths.Any(PeftAdapter.IsSequenceClassification);
        if (reward)
        {
            if (mode == Mode.Chat) throw new UserError($"{folder} is a reward model (it scores, it does not chat); give --val_dataset FILE or --input_ids IDS.");
            if (saveLogits is not null) throw new UserError("--save_logits needs next-token logits, which a reward model (a score head) does not give.");
            if (template is not null && mode == Mode.Dataset) throw new UserError("--template: a reward model's rows are rendered with the tokenizer's own chat template; drop --template.");
        }

        GenerationOptions Options(CausalLM model)
        {
            var o = GenerationOptions.FromModel(model.Spec, GenerationConfigFile.Read(folder));
            return o with
            {
                MaxNewTokens = maxNew ?? o.MaxNewTokens,
                DoSample = doSample ?? (temperature is > 0 || o.DoSample),
                Temperature = temperature ?? o.Temperature,
                TopK = topK ?? o.TopK,
                TopP = topP ?? o.TopP,
                RepetitionPenalty = penalty ?? o.RepetitionPenalty,
                Seed = seed,
            };
        }

        if (mode == Mode.Ids)
        {
            var prompts = ParsePrompts(ids!);
            if (stream == true && prompts.Count > 1) throw new UserError("--stream prints one prompt's tokens as they come; give one prompt or drop --stream.");
            using var model = adapters.Load(folder, flags.LoadOptions(stderr), stderr);
            if (model.IsRewardModel) return ScoreIds(model, prompts, stdout);
            if (saveLogits is not null) return SaveLogits(model, prompts, saveLogits, stdout);
            var o = Options(model);
            if (ignoreEos) o = o with { EosTokenIds = [] };
            return RunIds(new TokenGenerator(model), prompts, o, stream == true, stdout, stderr);
        }

        // Text modes: the tokenizer and the prompts first, so their mistakes show before the weights load.
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "give the prompt as token ids with --input_ids, or use a model folder with its tokenizer files.");
        var chat = ChatPrompt.Create(tokenizer, folder, template);
        if (mode == Mode.Dataset && reward)
        {
            var rows = datasets.SelectMany(d => ChatDataset.Read(d, system)).ToList();
            var encoded = rows.Select(r => EncodeScored(chat, r, system)).ToList();
            using var model = adapters.Load(folder, flags.LoadOptions(stderr), stderr);
            return ScoreDataset(model, rows, encoded, resultPath, stdout, stderr);
        }
        if (mode == Mode.Dataset)
        {
            var rows = datasets.SelectMany(d => ChatDataset.Read(d, system)).ToList();
            var encoded = rows.Select(r => EncodeRow(chat, r)).ToList();
            using var model = adapters.Load(folder, flags.LoadOptions(stderr), stderr);
            var o = Options(model);
            o = o with { EosTokenIds = ignoreEos ? [] : chat.StopIds(o.EosTokenIds) };
            return RunDataset(new TokenGenerator(model), chat, rows, encoded, o, maxBatch ?? 1, stream == true, resultPath, stdout, stderr);
        }

        using (var model = adapters.Load(folder, flags.LoadOptions(stderr), stderr))
        {
            var o = Options(model);
            o = o with { EosTokenIds = ignoreEos ? [] : chat.StopIds(o.EosTokenIds) };
            var echo = !ReferenceEquals(stdin, Console.In) || Console.IsInputRedirected;
            return RunChat(new TokenGenerator(model), chat, o, system, stream ?? true, echo, stdin, stdout, stderr);
        }
    }

    /// <summary>--save_logits: one forward pass over equal-length prompts, logits in float32 with the ids, as safetensors.</summary>
    private static int SaveLogits(CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts, string path, TextWriter stdout)
    {
        var length = prompts[0].Count;
        if (prompts.Any(p => p.Count != length)) throw new UserError("--save_logits needs prompts of equal length (no padding is applied).");
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var _ = TorchSharp.torch.no_grad();
        var flat = prompts.SelectMany(p => p.Select(i => (long)i)).ToArray();
        var ids = TorchSharp.torch.tensor(flat, [prompts.Count, length], device: model.Device);
        var logits = model.Forward(ids).to_type(TorchSharp.torch.ScalarType.Float32).cpu();
        Io.SafetensorsWriter.Write(path, [new("input_ids", ids.cpu()), new("logits", logits)]);
        stdout.WriteLine($"osprey: wrote logits [{string.Join(", ", logits.shape)}] to {path}");
        return 0;
    }

    /// <summary>Reward model, --input_ids: one score per prompt, "[i] score" (first label when there are several).</summary>
    private static int ScoreIds(CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts, TextWriter stdout)
    {
        for (var i = 0; i < prompts.Count; i++)
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{i}] {string.Join(' ', Score(model, prompts[i]).Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}"));
        return 0;
    }

    /// <summary>The score head's outputs for one unpadded sequence.</summary>
    private static float[] Score(CausalLM model, IReadOnlyList<int> ids)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var _ = TorchSharp.torch.no_grad();
        var t = TorchSharp.torch.tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count], device: model.Device);
        return model.Scores(t, TorchSharp.torch.ones_like(t)).cpu().data<float>().ToArray();
    }

    /// <summary>A row's whole conversation for a reward model: its messages (final assistant reply included; a query row's "response" as the reply), no generation prompt.</summary>
    private static int[] EncodeScored(ChatPrompt chat, ChatRow row, string? system)
    {
        var messages = new List<object?>();
        if (!row.QueryFormat && row.Record["messages"] is System.Text.Json.Nodes.JsonArray all)
        {
            messages.AddRange(all.Select(m => (object?)System.Text.Json.JsonSerializer.SerializeToElement(m)));
            if (system is not null) ChatDataset.SetSystem(messages, system);
        }
        else
        {
            messages.AddRange(row.Messages);
            if (row.Record["response"] is System.Text.Json.Nodes.JsonValue r && r.TryGetValue<string>(out var reply)) messages.Add(ChatDataset.Message("assistant", reply));
        }
        try
        {
            return chat.EncodeRendered(chat.Tokenizer.ApplyChatTemplate(messages, new ChatTemplateOptions { AddGenerationPrompt = false, Tools = row.Tools }));
        }
        catch (OspreyException e) when (e is not UserError)
        {
            throw new UserError($"{row.Where}: {e.Message.TrimEnd('.')}.", e);
        }
    }

    /// <summary>Reward model, --val_dataset: every row plus "score" (a list when the head has several labels), as JSON lines.</summary>
    private static int ScoreDataset(CausalLM model, List<ChatRow> rows, List<int[]> encoded, string? resultPath, TextWriter stdout, TextWriter stderr)
    {
        var lines = new StringBuilder();
        for (var i = 0; i < rows.Count; i++)
        {
            var record = (JsonObject)rows[i].Record.DeepClone();
            var values = Score(model, encoded[i]);
            record["score"] = values.Length == 1 ? JsonValue.Create((double)values[0]) : new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create((double)v)).ToArray());
            lines.Append(JsonText.Of(record)).Append('\n');
        }
        if (resultPath is null)
        {
            stdout.Write(lines.ToString());
            return 0;
        }
        var full = Path.GetFullPath(resultPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full + ".tmp", lines.ToString(), Utf8);
        File.Move(full + ".tmp", full, overwrite: true);
        stderr.WriteLine($"osprey: wrote {rows.Count} scored rows to {resultPath}.");
        return 0;
    }

    private enum Mode
    {
        Chat,
        Dataset,
        Ids,
    }

    private static int RunIds(TokenGenerator generator, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions o, bool stream, TextWriter stdout, TextWriter stderr)
    {
        if (stream)
        {
            var r = generator.Generate(prompts[0], o, e => { stdout.Write(e.Index == 0 ? $"{e.TokenId}" : $" {e.TokenId}"); stdout.Flush(); });
            stdout.WriteLine();
            stderr.WriteLine($"osprey: {r.Tokens.Count} tokens, finished by {r.Reason.ToString().ToLowerInvariant()}.");
            return 0;
        }
        var results = generator.Generate(prompts, o);
        for (int i = 0; i < results.Count; i++)
            stdout.WriteLine($"[{i}] {string.Join(' ', results[i].Tokens)}  ({results[i].Reason.ToString().ToLowerInvariant()})");
        return 0;
    }

    /// <summary>
    /// The interactive chat: <c>&lt;&lt;&lt; </c>, a line of input, the streamed reply; the conversation is kept
    /// until <c>clear</c>. When stdin is not a terminal the input line is echoed after the prompt, so the
    /// output reads as the conversation it was.
    /// </summary>
    private static int RunChat(TokenGenerator generator, ChatPrompt chat, GenerationOptions o, string? system, bool stream, bool echo,
        TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        stderr.WriteLine("osprey: chat started; 'clear' forgets the conversation, 'exit' or 'quit' (or end of input) stops.");
        var history = new List<object?>();
        void Reset()
        {
            history.Clear();
            if (system is not null) history.Add(ChatDataset.Message("system", system));
        }
        Reset();

        while (true)
        {
            stdout.Write(Prompt);
            stdout.Flush();
            var line = stdin.ReadLine();
            if (line is null)
            {
                stdout.WriteLine();
                break;
            }
            if (echo) stdout.WriteLine(line);
            var query = line.Trim();
            if (query is "exit" or "quit") break;
            if (query.Length == 0) continue;
            if (query == "clear")
            {
                Reset();
                stderr.WriteLine("osprey: conversation cleared.");
                continue;
            }

            var messages = new List<object?>(history) { ChatDataset.Message("user", line) };
            int[] prompt;
            try
            {
                prompt = chat.Encode(messages);
            }
            catch (OspreyException e) // the template refused the conversation; the chat goes on
            {
                stderr.WriteLine($"osprey: {e.Message}");
                continue;
            }

            var stop = o.EosTokenIds;
            string reply;
            if (stream)
            {
                var text = new StreamingText(t => chat.DecodeReply(t, stop));
                generator.Generate(prompt, o, e =>
                {
                    var delta = text.Add(e.TokenId);
                    if (delta.Length == 0) return;
                    stdout.Write(delta);
                    stdout.Flush();
                });
                stdout.Write(text.Finish());
                reply = chat.DecodeReply(text.Ids, stop);
            }
            else
            {
                reply = chat.DecodeReply(generator.Generate(prompt, o).Tokens, stop);
                stdout.Write(reply);
            }
            stdout.WriteLine();
            stdout.Flush();
            history.Add(ChatDataset.Message("user", line));
            history.Add(ChatDataset.Message("assistant", reply));
        }
        return 0;
    }

    private static int[] EncodeRow(ChatPrompt chat, ChatRow row)
    {
        try
        {
            return chat.Encode(row.Messages, row.Tools);
        }
        catch (OspreyException e) when (e is not UserError)
        {
            throw new UserError($"{row.Where}: {e.Message.TrimEnd('.')}.", e);
        }
    }

    /// <summary>
    /// Answers every row, <paramref name="maxBatch"/> rows per batched generation, and writes each row with its
    /// "response" as a JSON line: to stdout, or to a temporary file renamed to <paramref name="resultPath"/> at
    /// the end, so the result file is never half written.
    /// </summary>
    private static int RunDataset(TokenGenerator generator, ChatPrompt chat, List<ChatRow> rows, List<int[]> prompts, GenerationOptions o,
        int maxBatch, bool stream, string? resultPath, TextWriter stdout, TextWriter stderr)
    {
        string? temp = null;
        TextWriter? file = null;
        if (resultPath is not null)
        {
            var full = Path.GetFullPath(resultPath);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
            file = new StreamWriter(temp, append: false, Utf8);
        }

        var done = false;
        try
        {
            var output = file ?? stdout;
            var watch = Stopwatch.StartNew();
            long newTokens = 0;
            for (var start = 0; start < rows.Count; start += maxBatch)
            {
                var count = Math.Min(maxBatch, rows.Count - start);
                var batch = prompts.GetRange(start, count).Select(p => (IReadOnlyList<int>)p).ToList();
                IReadOnlyList<GenerationResult> results;
                if (stream)
                {
                    var text = new StreamingText(t => chat.DecodeReply(t, o.EosTokenIds));
                    results = generator.Generate(batch, o, e => { stdout.Write(text.Add(e.TokenId)); stdout.Flush(); });
                    stdout.WriteLine(text.Finish());
                }
                else
                {
                    results = generator.Generate(batch, o);
                }
                for (var i = 0; i < count; i++)
                {
                    newTokens += results[i].Tokens.Count;
                    output.WriteLine(JsonText.Of(Answered(rows[start + i], chat.DecodeReply(results[i].Tokens, o.EosTokenIds))));
                }
                output.Flush();
                var seconds = watch.Elapsed.TotalSeconds;
                stderr.WriteLine(string.Format(CultureInfo.InvariantCulture, "osprey: {0}/{1} rows answered, {2} new tokens in {3:F1} s ({4:F1} tokens/s).",
                    start + count, rows.Count, newTokens, seconds, seconds > 0 ? newTokens / seconds : 0));
            }
            if (file is not null)
            {
                file.Dispose();
                file = null;
                File.Move(temp!, resultPath!, overwrite: true);
                stderr.WriteLine($"osprey: wrote {rows.Count} rows to {resultPath}.");
            }
            done = true;
            return 0;
        }
        finally
        {
            file?.Dispose();
            if (!done && temp is not null && File.Exists(temp))
                stderr.WriteLine($"osprey: stopped early; the rows answered so far are in {temp} and {resultPath} was not written.");
        }
    }

    /// <summary>The row as read plus "response"; a query-format row's own "response" (its label) moves to "labels".</summary>
    internal static JsonObject Answered(ChatRow row, string response)
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

    internal static IReadOnlyList<IReadOnlyList<int>> ParsePrompts(string text)
    {
        var prompts = new List<IReadOnlyList<int>>();
        foreach (var part in text.Split(';'))
        {
            var tokens = part.Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var ids = new int[tokens.Length];
            for (int i = 0; i < tokens.Length; i++)
                if (!int.TryParse(tokens[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]))
                    throw new UserError($"--input_ids holds '{tokens[i]}', which is not a token id; give integers like \"1 17 42\".");
            if (ids.Length == 0) throw new UserError("--input_ids has an empty prompt; give at least one token id per prompt.");
            prompts.Add(ids);
        }
        return prompts;
    }
}
