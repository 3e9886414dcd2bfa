using System.Text.Json;
using Osprey.Cli.Args;
using Osprey.Datasets;

namespace Osprey.Cli.Commands;

/// <summary>
/// ms-swift's dataset flags (--dataset, --val_dataset, --split_dataset_ratio, --dataset_shuffle, --seed, --columns,
/// --disable_auto_column_mapping, --strict, --model_name, --model_author, --streaming), read into
/// <see cref="DatasetOptions"/> for every command that loads data (encode, sft, pt, ...).
/// </summary>
internal static class DatasetFlags
{
    public const string Help =
        "  --dataset D...           Training data: files (.jsonl .json .csv .tsv .txt .parquet), folders, or hub ids,\n" +
        "                           each as path_or_id[:subset][#N] (#N samples N rows). Hub ids come from the local\n" +
        "                           cache: fetch them once with 'osprey download --dataset ORG/NAME'.\n" +
        "  --val_dataset D...       Validation data, same syntax (then no split is taken from --dataset).\n" +
        "  --split_dataset_ratio X  Fraction of the training rows held out for validation (default 0).\n" +
        "  --dataset_shuffle B      Shuffle the training rows (default true).\n" +
        "  --seed N                 Seed for shuffling, splitting and #N sampling (default 42).\n" +
        "  --columns JSON           Column renames applied before format detection, e.g. '{\"prompt\": \"query\"}'.\n" +
        "  --disable_auto_column_mapping  Do not map common column names (instruction, question, ...) automatically.\n" +
        "  --strict B               A bad row is an error (default true); false skips it, counts it and reports.\n" +
        "  --model_name ZH [EN]     Name substituted into self-cognition data.\n" +
        "  --model_author ZH [EN]   Author substituted into self-cognition data.\n" +
        "  --streaming              Read rows lazily instead of loading whole files.\n";

    /// <summary>Reads the flags; <see cref="UserError"/> on bad values.</summary>
    public static DatasetOptions Read(OptionReader o)
    {
        var datasets = o.List("dataset");
        var valDatasets = o.List("val_dataset");
        var ratio = o.Double("split_dataset_ratio", 0);
        if (ratio is < 0 or >= 1 || double.IsNaN(ratio))
            throw new UserError($"--split_dataset_ratio must be at least 0 and below 1, got {ratio}.");
        var columnsText = o.String("columns");
        IReadOnlyDictionary<string, string>? columns = null;
        if (columnsText is not null) columns = ParseColumns(columnsText);
        return new DatasetOptions
        {
            Datasets = datasets,
            ValDatasets = valDatasets,
            SplitDatasetRatio = ratio,
            Shuffle = o.Bool("dataset_shuffle", true),
            Seed = o.Int("seed", 42),
            Columns = columns,
            DisableAutoColumnMapping = o.Bool("disable_auto_column_mapping", false),
            Strict = o.Bool("strict", true),
            ModelName = Pair(o, "model_name"),
            ModelAuthor = Pair(o, "model_author"),
            Streaming = o.Bool("streaming", false),
        };
    }

    private static Dictionary<string, string> ParseColumns(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new UserError($"--columns must be a JSON object of renames like '{{\"prompt\": \"query\"}}', got {text}.");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new UserError($"--columns maps \"{p.Name}\" to {p.Value.GetRawText()}; map each column to a column name string.");
                result[p.Name] = p.Value.GetString()!;
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new UserError($"--columns is not valid JSON ({e.Message}); pass an object like '{{\"prompt\": \"query\"}}'.", e);
        }
    }

    // ms-swift: --model_name 小黄 'Xiao Huang' (zh then en); one value serves both.
    private static (string? Zh, string? En) Pair(OptionReader o, string name)
    {
        var values = o.List(name);
        return values.Count switch
        {
            0 => (null, null),
            1 => (values[0], values[0]),
            2 => (values[0], values[1]),
            _ => throw new UserError($"--{name} takes one or two values (Chinese, then English), got {values.Count}."),
        };
    }
}
