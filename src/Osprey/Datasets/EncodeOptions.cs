using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Datasets;

/// <summary>
/// Everything <c>osprey encode</c> takes (and <c>osprey export --to_cached_dataset</c>): the tokenizer's model, the
/// datasets, how they are encoded, and where the samples go. <see cref="Encode.Run"/> runs it.
/// </summary>
public sealed record EncodeOptions
{
    /// <summary>The model whose tokenizer files encode (weights are not needed).</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>The datasets and how rows are read.</summary>
    [OptionGroup]
    public DatasetOptions Data { get; init; } = new();

    /// <summary>Seed for shuffling, splitting and #N sampling (goes to <see cref="DatasetOptions.Seed"/>).</summary>
    [Option("seed", "Seed for shuffling, splitting and #N sampling.")]
    public int Seed { get; init; } = 42;

    /// <summary>The template and length flags, as training takes them.</summary>
    [OptionGroup]
    public TemplateEncodingOptions Encoding { get; init; } = new();

    /// <summary>Encode each row when it is written (no cache).</summary>
    [Option("lazy_tokenize", "Encode each row when it is written instead of all up front (no cache).")]
    public bool LazyTokenize { get; init; }

    /// <summary>Where training samples go as JSON lines (null: stdout).</summary>
    [Option("output", "Write training samples as JSON lines to FILE.", DefaultText = "stdout", Placeholder = "FILE")]
    public string? Output { get; init; }

    /// <summary>Where validation samples go as JSON lines (null: not written).</summary>
    [Option("val_output", "Write validation samples as JSON lines to FILE.", Placeholder = "FILE")]
    public string? ValOutput { get; init; }

    /// <summary>Also write the encoding as a cached-dataset folder.</summary>
    [Option("to_cached_dataset", "Also write the encoding as a cached-dataset folder (train.bin, val.bin) for training.", Placeholder = "DIR")]
    public string? ToCachedDataset { get; init; }

    /// <summary>Print this many samples as text with loss tokens marked.</summary>
    [Option("show", "Print N samples as text with loss tokens marked (color on a terminal, else ⟦ ⟧).")]
    public int? Show { get; init; }

    /// <summary>Instead of encoding datasets, time encoding this many synthetic rows.</summary>
    [Option("benchmark_rows", "Instead: time encoding N synthetic Alpaca rows (1 thread and all) as one JSON line.")]
    public int? BenchmarkRows { get; init; }

    /// <summary>The dataset options with the run's seed.</summary>
    public DatasetOptions DataWithSeed => Data with { Seed = Seed };

    /// <summary>Checks the values before anything is loaded, naming the flag.</summary>
    /// <exception cref="OspreyException">A value is out of range or flags do not go together.</exception>
    public void Validate()
    {
        Data.Validate();
        if (Model.Model is null) throw new OspreyException("osprey encode needs --model; pass a folder with tokenizer.json or a hub id in the local cache.");
        Encoding.Validate();
        if (Encoding.Packing && LazyTokenize) throw new OspreyException("--packing and --lazy_tokenize do not go together: packing needs every sample's length up front.");
        if (ToCachedDataset is not null && (LazyTokenize || Data.Streaming))
            throw new OspreyException("--to_cached_dataset needs the whole encoding; leave out --lazy_tokenize and --streaming.");
        if (Show is < 0) throw new OspreyException($"--show must be 0 or more, got {Show}.");
        if (Encoding.DatasetNumProc < 0) throw new OspreyException($"--dataset_num_proc must be 1 or more, got {Encoding.DatasetNumProc}.");
        if (BenchmarkRows is null && Data.Datasets.Count == 0)
            throw new OspreyException("osprey encode needs --dataset; pass one or more dataset files, folders or hub ids.");
        if (BenchmarkRows is < 1) throw new OspreyException($"--benchmark_rows must be 1 or more, got {BenchmarkRows}.");
    }
}
