using Osprey.Io;
using Osprey.Tokenization;

namespace Osprey.Datasets;

/// <summary>
/// The library call under <c>osprey encode</c>: encodes datasets exactly as training will and writes the samples as
/// JSON lines, shows them with their loss tokens marked, or writes a cached-dataset folder. Encodings come from and go
/// to the encoding cache (~/.cache/osprey/encoded) unless streamed, lazy or <c>--load_from_cache_file false</c>.
/// </summary>
public static class Encode
{
    /// <summary>
    /// Runs <paramref name="options"/>: samples (or the benchmark's JSON line) to <paramref name="stdout"/> or the
    /// output files, notices and statistics to <paramref name="stderr"/>; <paramref name="color"/> marks loss tokens
    /// with ANSI colors when showing samples.
    /// </summary>
    /// <exception cref="OspreyException">A flag is wrong, or a dataset or the tokenizer cannot be read.</exception>
    public static void Run(EncodeOptions options, TextWriter stdout, TextWriter stderr, bool color)
    {
        options.Validate();
        var folder = options.Model.ResolveFolder(stderr);
        // Without --max_length, the model's context, as training takes it: encode shows what training will see, and
        // never tokenizes a row without a bound.
        if (options.Encoding.MaxLength is null && ModelContext.Read(folder) is { } context)
            options = options with { Encoding = options.Encoding with { MaxLength = context } };
        var o = options.Encoding;
        var datasetOptions = options.DataWithSeed;
        if (!File.Exists(Path.Combine(folder, "tokenizer.json")))
            throw new OspreyException($"{folder} has no tokenizer.json; pass a model folder that has its tokenizer files.");
        var tokenizer = Tokenizer.Load(folder);
        var encodingOptions = o.ToEncodingOptions(datasetOptions.Strict);
        var encoder = new DatasetEncoder(tokenizer, encodingOptions);

        if (options.BenchmarkRows is { } n)
        {
            stdout.WriteLine(JsonText.Of(EncodingBenchmark.Run(encoder, n, datasetOptions.Seed, o.DatasetNumProc)));
            return;
        }

        // Loaded only when the encoding is not in the cache.
        var loadedLazy = new Lazy<LoadedDatasets>(() => DatasetLoader.Load(datasetOptions, stderr));
        var stats = new EncodingStats();
        var (output, valOutput, show) = (options.Output, options.ValOutput, options.Show);
        var jsonOut = output is not null || show is null;

        if (datasetOptions.Streaming || options.LazyTokenize)
        {
            var loaded = loadedLazy.Value;
            // Rows are encoded as they are written: no cache, memory bounded by the batch (streaming) or one row (lazy).
            IEnumerable<EncodedSample> train = options.LazyTokenize
                ? encoder.Lazy(loaded.Train as IReadOnlyList<DatasetRow> ?? loaded.Train.ToList(), stats: stats).OfType<EncodedSample>()
                : encoder.EncodeStreaming(loaded.Train, stats);
            EncodedSampleWriter.Write(train, output, jsonOut, show, tokenizer, stdout, color);
            if (valOutput is not null) EncodedSampleWriter.Write(encoder.EncodeStreaming(loaded.Validation, new EncodingStats()), valOutput, true, null, tokenizer, stdout, color);
            stats.Report(stderr, o.MaxLength);
            return;
        }

        var encoded = DatasetEncoding.LoadOrEncode(encoder, datasetOptions, encodingOptions, folder, o.LoadFromCacheFile, () => loadedLazy.Value, stats, stderr);
        if (options.ToCachedDataset is { } cachedDataset)
        {
            encoded.SaveFolder(cachedDataset, DatasetEncoding.CacheKey(datasetOptions, encodingOptions, folder, encoder).ToString());
            stderr.WriteLine($"cached dataset written to {cachedDataset} ({encoded.Train.Count} train, {encoded.Validation.Count} validation samples).");
            if (output is null && show is null) return;
        }

        EncodedSampleWriter.Write(encoded.Train, output, jsonOut, show, tokenizer, stdout, color);
        if (valOutput is not null) EncodedSampleWriter.Write(encoded.Validation, valOutput, true, null, tokenizer, stdout, color);
    }
}
