namespace Osprey.Datasets;

/// <summary>The dataset flags of ms-swift (<c>--dataset</c>, <c>--val_dataset</c>, ...), parsed.</summary>
public sealed class DatasetOptions
{
    /// <summary><c>--dataset</c>: <c>path_or_id[:subset][#N]</c> entries (files, folders, registry names, hub ids).</summary>
    public IReadOnlyList<string> Datasets { get; init; } = [];

    /// <summary><c>--val_dataset</c>: same syntax; when given, no split is taken from the training data.</summary>
    public IReadOnlyList<string> ValDatasets { get; init; } = [];

    /// <summary><c>--split_dataset_ratio</c>: fraction of the training rows held out for validation (0 = none).</summary>
    public double SplitDatasetRatio { get; init; }

    /// <summary><c>--dataset_shuffle</c> (default true).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary><c>--seed</c> (default 42) for shuffling, splitting and #N sampling.</summary>
    public int Seed { get; init; } = 42;

    /// <summary><c>--columns '{"src": "dst"}'</c>: explicit column renames applied before format detection.</summary>
    public IReadOnlyDictionary<string, string>? Columns { get; init; }

    /// <summary><c>--disable_auto_column_mapping</c>.</summary>
    public bool DisableAutoColumnMapping { get; init; }

    /// <summary><c>--strict</c> (default true): a bad row is an error; false skips it, counts it and reports.</summary>
    public bool Strict { get; init; } = true;

    /// <summary><c>--model_name</c> / <c>--model_author</c>: substituted into self-cognition data (name, author; zh and en).</summary>
    public (string? Zh, string? En) ModelName { get; init; }

    /// <inheritdoc cref="ModelName"/>
    public (string? Zh, string? En) ModelAuthor { get; init; }

    /// <summary><c>--streaming</c>: read rows lazily instead of loading whole files (no global shuffle: a buffer shuffle).</summary>
    public bool Streaming { get; init; }
}
