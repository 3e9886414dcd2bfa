using Osprey.Templates;

namespace Osprey.Datasets;

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
