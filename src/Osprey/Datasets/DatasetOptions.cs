using Osprey.Options;

namespace Osprey.Datasets;

/// <summary>The dataset flags of ms-swift (<c>--dataset</c>, <c>--val_dataset</c>, ...), declared once.</summary>
// ms-swift's data arguments that do not apply here (docs/ms-swift-compat.md).
[NoEffectFlag("data_seed", "--seed also seeds the data order and sampling")]
[NoEffectFlag("val_dataset_shuffle", "validation rows keep their order")]
[NoEffectFlag("interleave_prob", Concat)]
[NoEffectFlag("stopping_strategy", Concat)]
[NoEffectFlag("shuffle_buffer_size", "streamed rows are read in order")]
[NoEffectFlag("download_mode", "delete the cached copy to download it again")]
[NoEffectFlag("remove_unused_columns", "it configures a Python library that Osprey does not use")]
[NoEffectFlag("custom_dataset_info", "Osprey does not read dataset_info.json registrations; pass files or hub ids")]
public sealed record DatasetOptions
{
    private const string Concat = "several datasets are concatenated";

    /// <summary>Training data: files, folders or hub ids, each as path_or_id[:subset][#N].</summary>
    [Option("dataset", "Training data: files (.jsonl .json .csv .tsv .txt .parquet), folders, or hub ids (from the local cache, else downloaded on first use; HF_HUB_OFFLINE=1: cache only), each as path_or_id[:subset][#N] (#N samples N rows).", Placeholder = "D...", Common = true)]
    public IReadOnlyList<string> Datasets { get; init; } = [];

    /// <summary>Validation data, same syntax (then no split is taken from the training data).</summary>
    [Option("val_dataset", "Validation data, same syntax (then no split is taken from --dataset).", Placeholder = "D...")]
    public IReadOnlyList<string> ValDatasets { get; init; } = [];

    /// <summary>Fraction of the training rows held out for validation.</summary>
    [Option("split_dataset_ratio", "Fraction of the training rows held out for validation.")]
    public double SplitDatasetRatio { get; init; }

    /// <summary>Shuffle the training rows.</summary>
    [Option("dataset_shuffle", "Shuffle the training rows.")]
    public bool Shuffle { get; init; } = true;

    /// <summary>Seed for shuffling, splitting and #N sampling (the verb's <c>--seed</c>).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Column renames applied before format detection.</summary>
    [Option("columns", "Column renames applied before format detection, e.g. '{\"prompt\": \"query\"}'.", Placeholder = "JSON", Converter = typeof(ColumnMapConverter))]
    public IReadOnlyDictionary<string, string>? Columns { get; init; }

    /// <summary>Do not map common column names (instruction, question, ...) automatically.</summary>
    [Option("disable_auto_column_mapping", "Do not map common column names (instruction, question, ...) automatically.")]
    public bool DisableAutoColumnMapping { get; init; }

    /// <summary>A bad row is an error (true) or is skipped, counted and reported (false).</summary>
    [Option("strict", "A bad row is an error; false skips it, counts it and reports.")]
    public bool Strict { get; init; } = true;

    /// <summary>Name substituted into self-cognition data (Chinese, English).</summary>
    [Option("model_name", "Name substituted into self-cognition data: Chinese, then English (one value serves both).", Placeholder = "ZH [EN]", Converter = typeof(NamePairConverter))]
    public (string? Zh, string? En) ModelName { get; init; }

    /// <summary>Author substituted into self-cognition data (Chinese, English).</summary>
    [Option("model_author", "Author substituted into self-cognition data: Chinese, then English.", Placeholder = "ZH [EN]", Converter = typeof(NamePairConverter))]
    public (string? Zh, string? En) ModelAuthor { get; init; }

    /// <summary>Read rows lazily instead of loading whole files.</summary>
    [Option("streaming", "Read rows lazily instead of loading whole files.")]
    public bool Streaming { get; init; }

    /// <summary>Checks the values, naming the flag.</summary>
    /// <exception cref="OspreyException">A value is out of range.</exception>
    public void Validate()
    {
        if (SplitDatasetRatio is < 0 or >= 1 || double.IsNaN(SplitDatasetRatio))
            throw new OspreyException($"--split_dataset_ratio must be at least 0 and below 1, got {SplitDatasetRatio}.");
    }
}
