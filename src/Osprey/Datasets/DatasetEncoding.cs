using System.Globalization;

namespace Osprey.Datasets;

/// <summary>
/// Encoding whole datasets once and reusing the result: the key that says when two encodings are the same, and the
/// load-or-encode step <c>osprey encode</c>, <c>export</c> and the trainers share.
/// </summary>
public static class DatasetEncoding
{
    /// <summary>
    /// The encoded train/validation sets: from the encoding cache (~/.cache/osprey/encoded) when an identical
    /// encoding was made before and <paramref name="useCache"/>, otherwise encoded now (and cached). <paramref name="folder"/>
    /// is the tokenizer folder; <paramref name="load"/> is called only on a cache miss; the cache hit or store, and the
    /// encoding statistics, are reported on <paramref name="stderr"/>.
    /// </summary>
    public static EncodedDatasets LoadOrEncode(DatasetEncoder encoder, DatasetOptions datasetOptions, EncodingOptions encodingOptions,
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
    public static EncodingCacheKey CacheKey(DatasetOptions d, EncodingOptions e, string tokenizerFolder, DatasetEncoder encoder)
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
}
