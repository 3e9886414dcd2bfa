using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Datasets;
using Osprey.Templates;

namespace Osprey.Tests.Datasets;

internal static class DatasetTestHelpers
{
    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Examples => Path.Combine(TestPaths.RepoRoot, "examples", "datasets");

    public static string Example(string name) => Path.Combine(Examples, name);

    /// <summary>A JSON text normalized (parsed and re-written compactly) for exact comparisons.</summary>
    public static string Norm(string json) => JsonNode.Parse(json)!.ToJsonString(Compact);

    public static string Json(Conversation? conversation) => JsonSerializer.Serialize(conversation!.Messages, Compact);

    public static string Json(object? value) => JsonSerializer.Serialize(value, Compact);

    public static LoadedDatasets Load(params string[] datasets) =>
        DatasetLoader.Load(new DatasetOptions { Datasets = datasets, Shuffle = false });

    public static List<DatasetRow> Rows(DatasetOptions options, StringWriter? log = null) =>
        DatasetLoader.Load(options, log).Train.ToList();

    public static List<DatasetRow> Rows(params string[] datasets) => Load(datasets).Train.ToList();

    public static OspreyException LoadError(string file, Func<DatasetOptions, DatasetOptions>? options = null)
    {
        var o = new DatasetOptions { Datasets = [file], Shuffle = false };
        if (options is not null) o = options(o);
        return Assert.Throws<OspreyException>(() => DatasetLoader.Load(o).Train.ToList());
    }
}
