using System.Text.Encodings.Web;
using System.Text.Json;
using Osprey.Hub;

namespace Osprey.Datasets;

/// <summary>
/// The library call under <c>osprey dataset</c>: the registered datasets (name, hub ids, subsets, format) and whether
/// each is in the local Hugging Face or ModelScope cache; or dataset entries loaded with their detected format and
/// row count and the first row converted. Needs no libtorch.
/// </summary>
public static class DatasetInspection
{
    private static readonly JsonSerializerOptions RelaxedJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Runs <paramref name="options"/>: the list, then the check, each printed to <paramref name="stdout"/>.</summary>
    /// <exception cref="OspreyException">Neither list nor check, or a dataset cannot be read.</exception>
    public static void Run(DatasetInspectOptions options, TextWriter stdout)
    {
        var check = options.Check.Concat(options.Data.Datasets).ToList();
        if (!options.List && check.Count == 0)
            throw new OspreyException("osprey dataset needs 'list' (the registered datasets) or 'check SPEC' (load a dataset and show its format).");
        options.Data.Validate();
        if (options.List) List(stdout);
        if (check.Count == 0) return;
        // Rows in file order: the first row shown is the file's first.
        var loaded = DatasetLoader.Load(options.Data with { Datasets = check, Shuffle = false }, stdout).Train.ToList();
        var first = loaded.FirstOrDefault();
        if (first is not null)
        {
            stdout.WriteLine($"first row ({first.Where}, {DatasetLoader.FormatName(first.Format)}):");
            stdout.WriteLine(first.Text ?? JsonSerializer.Serialize(first.Conversation!.Messages, RelaxedJson));
        }
    }

    /// <summary>The registry as a table.</summary>
    public static void List(TextWriter stdout)
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
