using System.Text.Json;
using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>The shape a dataset's rows were recognised as (logged per dataset).</summary>
public enum DatasetFormat
{
    /// <summary>OpenAI-style <c>messages</c> (system/user/assistant/tool roles, tool_calls).</summary>
    Messages,
    /// <summary>ShareGPT <c>conversations</c> with from/value (human/gpt/system/...).</summary>
    ShareGpt,
    /// <summary>Alpaca: instruction/input/output, optional system/history.</summary>
    Alpaca,
    /// <summary>query/response/history/system.</summary>
    QueryResponse,
    /// <summary>Plain <c>text</c> (pre-training), also .txt files (one document per line).</summary>
    Text,
    /// <summary>Preference pairs: chosen/rejected or rejected_response/rejected_messages.</summary>
    Preference,
    /// <summary>KTO: a conversation plus <c>label</c> true/false.</summary>
    Kto,
}

/// <summary>
/// One dataset row, converted to Osprey's canonical form, with where it came from (for error messages).
/// For chat formats <see cref="Conversation"/> is set (its last message is the assistant reply used as the
/// label); for <see cref="DatasetFormat.Text"/> only <see cref="Text"/>; preference rows also carry
/// <see cref="Rejected"/> (the same conversation with the rejected reply last); KTO rows <see cref="KtoLabel"/>.
/// </summary>
public sealed record DatasetRow(
    string Source,
    long Line,
    DatasetFormat Format,
    Conversation? Conversation,
    string? Text,
    Conversation? Rejected = null,
    bool? KtoLabel = null,
    double? Margin = null)
{
    /// <summary>"file.jsonl line 12" / "file.parquet row 12": where the row is, for messages.</summary>
    public string Where => $"{Source} {UnitOf(Source)} {Line}";

    /// <summary>"row" for tables (.parquet/.csv/.tsv, data rows counted from 1 after the header), "item" for a .json array, else "line".</summary>
    public static string UnitOf(string source) =>
        source.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase) || source.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || source.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase) ? "row"
        : source.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? "item"
        : "line";
}

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

/// <summary>Reads datasets: files, folders, registry names and cached hub datasets; detects formats; reports bad rows.</summary>
public static partial class DatasetLoader
{
    /// <summary>
    /// Resolves every <c>--dataset</c>/<c>--val_dataset</c> entry and returns the rows. Each dataset's detected
    /// format is written to <paramref name="log"/> ("dataset alpaca.jsonl: format alpaca, 500 rows").
    /// Bad input throws <see cref="OspreyException"/> naming file, line/row and field (or, with Strict false,
    /// is skipped, counted and reported to <paramref name="log"/>).
    /// </summary>
    public static LoadedDatasets Load(DatasetOptions options, TextWriter? log = null) => LoadCore(options, log);
}

/// <summary>How many bad rows were skipped (under --strict false); readers increment <see cref="Value"/>.</summary>
public sealed class SkipCounter
{
    /// <summary>The count.</summary>
    public int Value;
}
