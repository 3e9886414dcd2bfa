using Osprey.Cli.Args;
using Osprey.Datasets;
using Osprey.Hub;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey dataset list</c> (or <c>--list</c>): the registered datasets (name, hub ids, subsets, format) and whether each is in
/// the local Hugging Face or ModelScope cache. <c>check SPEC</c> (<c>--check SPEC</c>) loads a <c>--dataset</c> entry and prints its
/// detected format and row count. Needs no libtorch.
/// </summary>
internal sealed class DatasetCommand : ICommand
{
    private static readonly System.Text.Json.JsonSerializerOptions RelaxedJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public string Name => "dataset";

    public IReadOnlyCollection<string> Actions => ["list", "check"];

    public string Summary => "List the registered datasets and whether they are cached, or check a dataset's format and rows.";

    public string Usage =>
        "  list | --list            Print the registered datasets: name, hub ids, subsets, format, cached or not.\n" +
        "  check SPEC... | --check  Load --dataset entries (path_or_id[:subset][#N]) and print each file's format\n" +
        "                           and row count, plus the first row converted.\n" +
        "  --strict BOOL            --check: false skips bad rows and counts them (default true).\n" +
        "  --columns JSON           --check: column renames, e.g. '{\"question\": \"query\"}'.\n" +
        "  --disable_auto_column_mapping  --check: no automatic column mapping.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var list = options.Bool("list", false);
        var check = options.List("check");
        var strict = options.Bool("strict", true);
        var columnsText = options.String("columns");
        var disableAuto = options.Bool("disable_auto_column_mapping", false);
        options.EnsureNoUnknownFlags();
        if (!list && check.Count == 0)
            throw new UserError("osprey dataset needs 'list' (the registered datasets) or 'check SPEC' (load a dataset and show its format).");
        if (list) List(stdout);
        if (check.Count > 0)
        {
            var loaded = DatasetLoader.Load(new DatasetOptions
            {
                Datasets = check,
                Shuffle = false,
                Strict = strict,
                Columns = ParseColumns(columnsText),
                DisableAutoColumnMapping = disableAuto,
            }, stdout).Train.ToList();
            var first = loaded.FirstOrDefault();
            if (first is not null)
            {
                stdout.WriteLine($"first row ({first.Where}, {DatasetLoader.FormatName(first.Format)}):");
                stdout.WriteLine(first.Text ?? System.Text.Json.JsonSerializer.Serialize(first.Conversation!.Messages, RelaxedJson));
            }
        }
        return 0;
    }

    internal static IReadOnlyDictionary<string, string>? ParseColumns(string? text)
    {
        if (text is null) return null;
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(text)
                ?? throw new UserError("--columns must be a JSON object such as '{\"question\": \"query\"}'.");
        }
        catch (System.Text.Json.JsonException)
        {
            throw new UserError($"--columns {text} is not a JSON object of strings; write it as '{{\"question\": \"query\", \"answer\": \"response\"}}'.");
        }
    }

    /// <summary>The registry as a table.</summary>
    internal static void List(TextWriter stdout)
    {
        var rows = DatasetRegistry.All.Select(d =>
        {
            var cached = new[] { d.HuggingFaceId, d.ModelScopeId }.OfType<string>().Select(id => HubDatasetCache.Find(id)).FirstOrDefault(p => p is not null);
            return new[]
            {
                d.Name,
                d.ModelScopeId ?? "-",
                d.HuggingFaceId ?? "-",
                string.Join(",", d.Subsets),
                DatasetLoader.FormatName(d.Format),
                cached is null ? "no" : "yes (" + cached + ")",
            };
        }).ToList();
        string[] header = ["name", "modelscope id", "huggingface id", "subsets", "format", "cached"];
        var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd();
        stdout.WriteLine(Line(header));
        foreach (var r in rows) stdout.WriteLine(Line(r));
    }
}
