using Osprey.Cli.Args;
using Osprey.Inference;
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
        var encoder = new DatasetEncoder(tokenizer, encodingOptions);

        if (benchmarkRows is { } n)
        {
            if (n < 1) throw new UserError($"--benchmark_rows must be 1 or more, got {n}.");
            stdout.WriteLine(JsonText.Of(EncodingBenchmark.Run(encoder, n, datasetOptions.Seed, threads)));
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
            EncodedSampleWriter.Write(train, output, jsonOut, show, tokenizer, stdout, color);
            if (valOutput is not null) EncodedSampleWriter.Write(encoder.EncodeStreaming(loaded.Validation, new EncodingStats()), valOutput, true, null, tokenizer, stdout, color);
            stats.Report(stderr, maxLength);
            return 0;
        }

        var encoded = DatasetEncoding.LoadOrEncode(encoder, datasetOptions, encodingOptions, folder, useCache, () => loadedLazy.Value, stats, stderr);
        if (cachedDataset is not null)
        {
            encoded.SaveFolder(cachedDataset, DatasetEncoding.CacheKey(datasetOptions, encodingOptions, folder, encoder).ToString());
            stderr.WriteLine($"cached dataset written to {cachedDataset} ({encoded.Train.Count} train, {encoded.Validation.Count} validation samples).");
            if (output is null && show is null) return 0;
        }

        EncodedSampleWriter.Write(encoded.Train, output, jsonOut, show, tokenizer, stdout, color);
        if (valOutput is not null) EncodedSampleWriter.Write(encoded.Validation, valOutput, true, null, tokenizer, stdout, color);
        return 0;
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
}
