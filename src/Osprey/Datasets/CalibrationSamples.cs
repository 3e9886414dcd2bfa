using Osprey.Tokenization;

namespace Osprey.Datasets;

/// <summary>
/// Calibration data for a quantized export (GPTQ, AWQ): rows of --dataset read and encoded with the model's template as
/// training encodes them (the same loader, template and --max_length), taking the first <c>--quant_n_samples</c> that
/// survive encoding. Only the token ids are kept; labels do not matter to calibration.
/// </summary>
public static class CalibrationSamples
{
    /// <summary>
    /// Up to <paramref name="count"/> token-id rows of at most --max_length (2048 when unset) tokens from
    /// <paramref name="data"/>, encoded with the tokenizer of <paramref name="folder"/>.
    /// </summary>
    /// <exception cref="OspreyException">No --dataset, no tokenizer, or no row survives encoding.</exception>
    public static IReadOnlyList<int[]> Load(DatasetOptions data, TemplateEncodingOptions encoding, string folder, int count, TextWriter log)
    {
        if (data.Datasets.Count == 0) throw new OspreyException("a GPTQ or AWQ export needs calibration data; pass --dataset (e.g. a .jsonl of conversations or texts), as for sft.");
        if (count <= 0) throw new OspreyException($"--quant_n_samples must be positive, got {count}.");
        encoding.Validate();
        if (!File.Exists(Path.Combine(folder, "tokenizer.json")))
            throw new OspreyException($"{folder} has no tokenizer.json; calibration needs the model's tokenizer files beside its weights.");
        var options = encoding with { MaxLength = encoding.MaxLength ?? 2048 };
        var encoder = new DatasetEncoder(Tokenizer.Load(folder), options.ToEncodingOptions(data.Strict));
        var loaded = DatasetLoader.Load(data, log);
        var samples = new List<int[]>();
        // Rows are encoded in batches until enough survive (--truncation_strategy delete drops over-long ones).
        foreach (var batch in loaded.Train.Concat(loaded.Validation).Chunk(Math.Max(count, 16)))
        {
            foreach (var sample in encoder.EncodeAll(batch))
                if (sample.InputIds.Length > 0 && samples.Count < count) samples.Add(sample.InputIds);
            if (samples.Count >= count) break;
        }
        if (samples.Count == 0) throw new OspreyException($"no calibration sample survived encoding {string.Join(", ", data.Datasets)} with --max_length {options.MaxLength}; raise --max_length or use --truncation_strategy right.");
        log.WriteLine($"osprey: {samples.Count} calibration samples, {samples.Sum(s => (long)s.Length)} tokens.");
        return samples;
    }
}
