using Osprey.Serving;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Cli.Args;
using Osprey.Io;
using Osprey.Datasets;
using Osprey.Templates;
using Osprey.Tokenization;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey encode</c>: loads datasets and encodes them exactly as training will (template, loss masks,
/// --max_length/--truncation_strategy, --packing), writing JSON lines or showing samples with their loss tokens
/// marked. Encodings are cached under ~/.cache/osprey/encoded and reused when nothing that shapes them changed.
/// Needs only the tokenizer files.
/// </summary>
internal sealed class EncodeCommand : ICommand
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public string Name => "encode";

    public string Summary => "Encode datasets as training sees them (template, loss masks, truncation, packing) to JSON lines.";

    public string Usage =>
        "  --model DIR|ID           Folder with the tokenizer files (weights not needed), or a hub id in the local cache.\n" +
        DatasetFlags.Help +
        "  --template NAME          Chat format; default the model's own template, or chatml|qwen|qwen3|llama3|...\n" +
        "  --system TEXT            System message for conversations without one.\n" +
        "  --loss_scale MODE        default (every assistant turn) | last_round | all.\n" +
        "  --max_length N           Longest sample in tokens (default: no limit).\n" +
        "  --truncation_strategy S  delete (default; each dropped row is reported with file and line) | left | right.\n" +
        "  --packing                Pack samples into rows of --max_length tokens (adds \"position_ids\").\n" +
        "  --lazy_tokenize          Encode each row when it is written instead of all up front (no cache).\n" +
        "  --dataset_num_proc N     Encoding threads (default: all cores).\n" +
        "  --load_from_cache_file B Reuse/store the encoding in ~/.cache/osprey/encoded (default true).\n" +
        "  --output FILE            Write training samples as JSON lines to FILE (default stdout).\n" +
        "  --val_output FILE        Write validation samples as JSON lines to FILE.\n" +
        "  --to_cached_dataset DIR  Also write the encoding as a cached-dataset folder (train.bin, val.bin) for training.\n" +
        "  --show N                 Print N samples as text with loss tokens marked (color on a terminal, else ⟦ ⟧).\n" +
        "  --benchmark_rows N       Instead: time encoding N synthetic Alpaca rows (1 thread and all) as one JSON line.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, stdout, stderr, null);

    /// <summary>
    /// The encoding run; <paramref name="cachedDatasetFolder"/> set means <c>osprey export --to_cached_dataset true
    /// --output_dir DIR</c>: write the cached-dataset folder and nothing else.
    /// </summary>
    internal static int Run(OptionReader options, TextWriter stdout, TextWriter stderr, string? cachedDatasetFolder)
    {
        var model = options.String("model");
        var templateName = options.String("template");
        var system = options.String("system");
        var lossScale = Parse(() => TemplateFlags.ParseLossScale(options.String("loss_scale", "default")), "--loss_scale");
        var maxLength = options.Int("max_length");
        var truncation = Parse(() => TemplateFlags.ParseTruncationStrategy(options.String("truncation_strategy", "delete")), "--truncation_strategy");
        var packing = options.Bool("packing", false);
        var lazy = options.Bool("lazy_tokenize", false);
        var threads = options.Int("dataset_num_proc", 0);
        var useCache = options.Bool("load_from_cache_file", true);
        var output = options.String("output");
        var valOutput = options.String("val_output");
        var show = options.Int("show");
        var benchmarkRows = options.Int("benchmark_rows");
        var cachedDataset = cachedDatasetFolder ?? options.String("to_cached_dataset");
        var datasetOptions = DatasetFlags.Read(options);
        options.EnsureNoUnknownFlags();

        if (model is null) throw new UserError("osprey encode needs --model; pass a folder with tokenizer.json or a hub id in the local cache.");
        if (maxLength is <= 0) throw new UserError($"--max_length must be positive, got {maxLength}.");
        if (packing && maxLength is null) throw new UserError("--packing needs --max_length N: packed rows are N tokens long.");
        if (packing && lazy) throw new UserError("--packing and --lazy_tokenize do not go together: packing needs every sample's length up front.");
        if (cachedDataset is not null && (lazy || datasetOptions.Streaming))
            throw new UserError("--to_cached_dataset needs the whole encoding; leave out --lazy_tokenize and --streaming.");
        if (show is < 0) throw new UserError($"--show must be 0 or more, got {show}.");
        if (threads < 0) throw new UserError($"--dataset_num_proc must be 1 or more, got {threads}.");
        if (benchmarkRows is null && datasetOptions.Datasets.Count == 0)
            throw new UserError("osprey encode needs --dataset; pass one or more dataset files, folders or hub ids.");

        var folder = Hub.HubCache.ResolveModel(model);
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "pass a model folder that has its tokenizer files.");
        var encodingOptions = new EncodingOptions
        {
            Template = templateName, System = system, LossScale = lossScale, MaxLength = maxLength, Truncation = truncation,
            Packing = packing, Strict = datasetOptions.Strict, Threads = threads,
        };
        DatasetEncoder encoder;
        try
        {
            encoder = new DatasetEncoder(tokenizer, encodingOptions);
        }
        catch (OspreyException e)
        {
            throw new UserError(e.Message, e);
        }

        if (benchmarkRows is { } n)
        {
            if (n < 1) throw new UserError($"--benchmark_rows must be 1 or more, got {n}.");
            stdout.WriteLine(Benchmark(encoder, n, datasetOptions.Seed, threads));
            return 0;
        }

        // Loaded only when the encoding is not in the cache.
        var loadedLazy = new Lazy<LoadedDatasets>(() => DatasetLoader.Load(datasetOptions, stderr));
        var stats = new EncodingStats();
        var color = show is > 0 && ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is null;
        var jsonOut = output is not null || show is null;

        if (datasetOptions.Streaming || lazy)
        {
            var loaded = loadedLazy.Value;
            // Rows are encoded as they are written: no cache, memory bounded by the batch (streaming) or one row (lazy).
            IEnumerable<EncodedSample> train = lazy
                ? encoder.Lazy(loaded.Train as IReadOnlyList<DatasetRow> ?? loaded.Train.ToList(), stats: stats).OfType<EncodedSample>()
                : encoder.EncodeStreaming(loaded.Train, stats);
            Write(train, output, jsonOut, show, tokenizer, stdout, color);
            if (valOutput is not null) Write(encoder.EncodeStreaming(loaded.Validation, new EncodingStats()), valOutput, true, null, tokenizer, stdout, color);
            stats.Report(stderr, maxLength);
            return 0;
        }

        var encoded = Encoded(encoder, datasetOptions, encodingOptions, folder, useCache, () => loadedLazy.Value, stats, stderr);
        if (cachedDataset is not null)
        {
            encoded.SaveFolder(cachedDataset, CacheKey(datasetOptions, encodingOptions, folder, encoder).ToString());
            stderr.WriteLine($"cached dataset written to {cachedDataset} ({encoded.Train.Count} train, {encoded.Validation.Count} validation samples).");
            if (output is null && show is null) return 0;
        }

        Write(encoded.Train, output, jsonOut, show, tokenizer, stdout, color);
        if (valOutput is not null) Write(encoded.Validation, valOutput, true, null, tokenizer, stdout, color);
        return 0;
    }

    /// <summary>
    /// The encoded train/validation sets: from the encoding cache (~/.cache/osprey/encoded) when an identical
    /// encoding was made before and <paramref name="useCache"/>, otherwise encoded now (and cached).
    /// </summary>
    internal static EncodedDatasets Encoded(DatasetEncoder encoder, DatasetOptions datasetOptions, EncodingOptions encodingOptions,
        string folder, bool useCache, Func<LoadedDatasets> load, EncodingStats stats, TextWriter stderr)
    {
        EncodedDatasets Build()
        {
            var loaded = load();
            var train = EncodedDataset.FromSamples(encoder.EncodeAll(loaded.Train.ToList(), stats));
            var val = EncodedDataset.FromSamples(encoder.EncodeAll(loaded.Validation.ToList(), new EncodingStats()));
            stats.Report(stderr, encodingOptions.MaxLength);
            return new EncodedDatasets(train, val);
        }

        if (!useCache) return Build();
        var key = CacheKey(datasetOptions, encodingOptions, folder, encoder);
        var cache = new EncodedDatasetCache();
        var encoded = cache.GetOrCreate(key, Build, out var hit);
        stderr.WriteLine(hit
            ? $"encoded datasets reused from {cache.EntryPath(key)} ({encoded.Train.Count} train, {encoded.Validation.Count} validation samples)."
            : $"encoded datasets cached in {cache.EntryPath(key)}.");
        return encoded;
    }

    /// <summary>The cache key of an encoding: datasets (files by size+mtime), dataset flags, tokenizer files, template and length flags.</summary>
    internal static EncodingCacheKey CacheKey(DatasetOptions d, EncodingOptions e, string tokenizerFolder, DatasetEncoder encoder)
    {
        var key = new EncodingCacheKey();
        foreach (var entry in d.Datasets) key.AddDatasetEntry(entry);
        key.Add("val", "");
        foreach (var entry in d.ValDatasets) key.AddDatasetEntry(entry);
        key.Add("split_dataset_ratio", d.SplitDatasetRatio.ToString("R", CultureInfo.InvariantCulture))
            .Add("dataset_shuffle", d.Shuffle.ToString())
            .Add("seed", d.Seed.ToString(CultureInfo.InvariantCulture))
            .Add("columns", d.Columns is null ? null : string.Join(",", d.Columns.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + ">" + kv.Value)))
            .Add("disable_auto_column_mapping", d.DisableAutoColumnMapping.ToString())
            .Add("model_name", $"{d.ModelName.Zh}|{d.ModelName.En}")
            .Add("model_author", $"{d.ModelAuthor.Zh}|{d.ModelAuthor.En}");
        key.AddTokenizerFolder(tokenizerFolder);
        string templateSource;
        try
        {
            templateSource = encoder.Template.Name == "jinja" ? encoder.Tokenizer.ChatTemplateSource ?? "" : encoder.Template.Name;
        }
        catch (OspreyException)
        {
            templateSource = "<none>"; // text-only data needs no template; a chat row will raise the error while encoding
        }
        key.Add("encoding", e.Fingerprint(templateSource));
        return key;
    }

    private static T Parse<T>(Func<T> parse, string flag)
    {
        try
        {
            return parse();
        }
        catch (OspreyException e) when (e is not UserError)
        {
            throw new UserError($"{flag}: {e.Message}", e);
        }
    }

    private static void Write(IEnumerable<EncodedSample> samples, string? output, bool json, int? show, Tokenizer tokenizer, TextWriter stdout, bool color)
    {
        var shown = 0;
        if (!json)
        {
            foreach (var s in samples)
            {
                if (shown >= show) break;
                stdout.Write(Show(s, shown++, tokenizer, color));
            }
            stdout.Flush();
            return;
        }
        var temp = output is null ? null : $"{output}.tmp-{Environment.ProcessId}";
        var file = temp is null ? null : new StreamWriter(temp, append: false, Utf8, 1 << 20);
        try
        {
            var writer = file ?? stdout;
            var sb = new StringBuilder();
            foreach (var s in samples)
            {
                sb.Clear();
                AppendJson(sb, s);
                writer.WriteLine(sb);
                if (show is { } n && shown < n && file is not null) stdout.Write(Show(s, shown++, tokenizer, color));
            }
            writer.Flush();
            file?.Dispose();
            file = null;
            if (temp is not null) File.Move(temp, output!, overwrite: true);
        }
        finally
        {
            file?.Dispose();
            if (temp is not null && File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>One JSON line: {"input_ids": [...], "labels": [...]} (and "position_ids" when packed).</summary>
    internal static void AppendJson(StringBuilder sb, EncodedSample s)
    {
        sb.Append("{\"input_ids\":");
        JsonText.AppendInts(sb, s.InputIds);
        sb.Append(",\"labels\":");
        JsonText.AppendInts(sb, s.Labels);
        if (s.PositionIds is { } p)
        {
            sb.Append(",\"position_ids\":");
            JsonText.AppendInts(sb, p);
        }
        sb.Append('}');
    }

    /// <summary>A sample as text: the decoded tokens, loss-carrying runs in green (color) or between ⟦ and ⟧, then the counts.</summary>
    internal static string Show(EncodedSample s, int index, Tokenizer tokenizer, bool color)
    {
        var sb = new StringBuilder();
        var packed = s.PositionIds is { } p ? p.Count(x => x == 0) : 1;
        sb.Append(CultureInfo.InvariantCulture, $"--- sample {index}: {s.Length} tokens, {s.LabelledTokenCount} with loss");
        if (s.PositionIds is not null) sb.Append(CultureInfo.InvariantCulture, $", {packed} packed");
        sb.Append('\n');
        var start = 0;
        while (start < s.Length)
        {
            var labelled = s.Labels[start] != EncodedSample.IgnoreIndex;
            var end = start + 1;
            while (end < s.Length && (s.Labels[end] != EncodedSample.IgnoreIndex) == labelled) end++;
            var text = tokenizer.Decode(s.InputIds[start..end]);
            if (labelled) sb.Append(color ? "\u001b[32m" : "⟦").Append(text).Append(color ? "\u001b[0m" : "⟧");
            else sb.Append(text);
            start = end;
        }
        return sb.Append('\n').ToString();
    }

    /// <summary>Times encoding <paramref name="rows"/> synthetic Alpaca rows on 1 thread and on all; one JSON line.</summary>
    internal static string Benchmark(DatasetEncoder encoder, int rows, int seed, int threads)
    {
        var data = SyntheticAlpaca(rows, seed);
        var all = threads > 0 ? threads : Environment.ProcessorCount;
        var result = new JsonObject { ["rows"] = rows, ["cpu_count"] = Environment.ProcessorCount, ["seed"] = seed };
        // Warm-up: JIT tiers and the tokenizer's caches.
        var warm = WithThreads(encoder, all);
        var watch = Stopwatch.StartNew();
        var warmRows = data.Take(Math.Min(rows, 2000)).ToList();
        do warm.EncodeAll(warmRows);
        while (rows >= 10_000 && watch.Elapsed < TimeSpan.FromSeconds(2));
        var counts = all == 1 ? new[] { 1 } : new[] { 1, all };
        foreach (var t in counts)
        {
            var enc = WithThreads(encoder, t);
            var stats = new EncodingStats();
            watch.Restart();
            var samples = enc.EncodeAll(data, stats);
            var seconds = watch.Elapsed.TotalSeconds;
            var entry = new JsonObject
            {
                ["threads"] = t,
                ["samples"] = samples.Count,
                ["tokens"] = stats.Tokens,
                ["labelled_tokens"] = stats.LabelledTokens,
                ["seconds"] = Math.Round(seconds, 3),
                ["rows_per_s"] = Math.Round(rows / seconds, 1),
                ["tokens_per_s"] = Math.Round(stats.Tokens / seconds, 1),
            };
            if (t == counts[^1])
            {
                // The cache's part: flatten, save, load back.
                using var dir = new TempFolder();
                watch.Restart();
                var ds = EncodedDataset.FromSamples(samples);
                var path = Path.Combine(dir.Path, "train.bin");
                ds.Save(path);
                var saveSeconds = watch.Elapsed.TotalSeconds;
                watch.Restart();
                var loaded = EncodedDataset.Load(path);
                entry["cache_save_s"] = Math.Round(saveSeconds, 3);
                entry["cache_load_s"] = Math.Round(watch.Elapsed.TotalSeconds, 3);
                entry["cache_bytes"] = new FileInfo(path).Length;
                if (loaded.Count != ds.Count) throw new InvalidOperationException("cache round trip lost samples");
            }
            result[$"threads_{t}"] = entry;
        }
        return JsonText.Of(result);
    }

    private static DatasetEncoder WithThreads(DatasetEncoder e, int threads) => new(e.Tokenizer, new EncodingOptions
    {
        Template = e.Options.Template, System = e.Options.System, LossScale = e.Options.LossScale, MaxLength = e.Options.MaxLength,
        Truncation = e.Options.Truncation, Packing = e.Options.Packing, Strict = e.Options.Strict, Threads = threads, Extra = e.Options.Extra,
    });

    /// <summary>Alpaca-style rows (instruction, optional input, output) of English-like words, fixed by <paramref name="seed"/>.</summary>
    internal static List<DatasetRow> SyntheticAlpaca(int rows, int seed)
    {
        // A Zipf-like vocabulary of 20,000 pseudo-words from syllables (plus some digits and punctuation), so the
        // tokenizer sees realistic word variety rather than a few words its caches always hit.
        string[] syllables =
        [
            "a", "ab", "ac", "al", "an", "ar", "as", "at", "be", "ca", "ce", "co", "de", "di", "do", "el", "en", "er", "es", "fa",
            "fi", "ga", "ge", "ha", "he", "hi", "in", "is", "it", "ka", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne",
            "ni", "no", "on", "or", "pa", "pe", "pi", "po", "qu", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti",
            "to", "tr", "un", "ur", "va", "ve", "vi", "wa", "we", "xi", "yo", "za", "ze", "tion", "ing", "ed", "ly", "ment", "ous",
        ];
        var vocab = new Random(seed ^ 0x5eed);
        var words = new string[20_000];
        for (var w = 0; w < words.Length; w++)
        {
            var n = 1 + vocab.Next(4);
            var sbw = new StringBuilder();
            for (var k = 0; k < n; k++) sbw.Append(syllables[vocab.Next(syllables.Length)]);
            if (vocab.Next(40) == 0) sbw.Append(vocab.Next(10_000).ToString(CultureInfo.InvariantCulture));
            words[w] = sbw.ToString();
        }
        var random = new Random(seed);
        string Words(int min, int max)
        {
            var n = random.Next(min, max + 1);
            var sb = new StringBuilder();
            for (var i = 0; i < n; i++)
            {
                if (i > 0) sb.Append(random.Next(12) == 0 ? ", " : " ");
                // Zipf-like: index = N^u - 1 for uniform u favours the first words.
                var w = words[Math.Min(words.Length - 1, (int)Math.Pow(words.Length, random.NextDouble()) - 1)];
                sb.Append(i == 0 ? char.ToUpperInvariant(w[0]) + w[1..] : w);
            }
            return sb.Append('.').ToString();
        }
        var result = new List<DatasetRow>(rows);
        for (var i = 0; i < rows; i++)
        {
            var instruction = Words(6, 30);
            var input = random.Next(2) == 0 ? "" : Words(5, 60);
            var output = Words(20, 250);
            var query = input.Length == 0 ? instruction : instruction + "\n" + input;
            var conversation = new Conversation(
            [
                new Dictionary<string, object?> { ["role"] = "user", ["content"] = query },
                new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = output },
            ]);
            result.Add(new DatasetRow("synthetic-alpaca", i + 1, DatasetFormat.Alpaca, conversation, null));
        }
        return result;
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "osprey-bench-" + Guid.NewGuid().ToString("N"));

        public TempFolder() => Directory.CreateDirectory(Path);

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
