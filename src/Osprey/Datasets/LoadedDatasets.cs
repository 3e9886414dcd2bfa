namespace Osprey.Datasets;

/// <summary>Training and validation rows of a <see cref="DatasetOptions"/>.</summary>
public sealed class LoadedDatasets
{
    /// <summary>Training rows, mixed, sampled (#N) and shuffled as asked; lazy when streaming.</summary>
    public required IEnumerable<DatasetRow> Train { get; init; }

    /// <summary>Validation rows (from --val_dataset or the --split_dataset_ratio hold-out); empty when neither.</summary>
    public required IEnumerable<DatasetRow> Validation { get; init; }

    /// <summary>Rows skipped as bad under --strict false (counted as they are read when streaming).</summary>
    public int Skipped => SkippedCounter.Value;

    /// <summary>Shared counter the readers increment.</summary>
    public SkipCounter SkippedCounter { get; init; } = new();
}
