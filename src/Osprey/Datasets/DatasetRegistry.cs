namespace Osprey.Datasets;

/// <summary>
/// A named dataset: its ModelScope and Hugging Face ids (ms-swift names datasets by these ids), its subsets, the
/// format its rows have, and extra column renames its preprocessing needs.
/// </summary>
/// <param name="Name">Short name (also accepted in <c>--dataset</c>).</param>
/// <param name="ModelScopeId">ModelScope id, e.g. AI-ModelScope/alpaca-gpt4-data-en (null when only on Hugging Face).</param>
/// <param name="HuggingFaceId">Hugging Face id, e.g. vicgalle/alpaca-gpt4 (null when only on ModelScope).</param>
/// <param name="Subsets">Subsets ("default" when the dataset has none).</param>
/// <param name="Format">The format the rows are in.</param>
/// <param name="Columns">Column renames applied before detection (null when none).</param>
/// <param name="SelfCognition">Rows carry {{NAME}}/{{AUTHOR}} placeholders for --model_name/--model_author.</param>
public sealed record RegisteredDataset(
    string Name,
    string? ModelScopeId,
    string? HuggingFaceId,
    IReadOnlyList<string> Subsets,
    DatasetFormat Format,
    IReadOnlyDictionary<string, string>? Columns = null,
    bool SelfCognition = false)
{
    /// <summary>The names <c>--dataset</c> accepts for this entry: the short name and both hub ids.</summary>
    public IEnumerable<string> Aliases => new[] { Name, ModelScopeId, HuggingFaceId }.OfType<string>();
}

/// <summary>The datasets Osprey knows by name (a small subset of ms-swift's registry, same ids).</summary>
public static class DatasetRegistry
{
    /// <summary>Every registered dataset.</summary>
    public static IReadOnlyList<RegisteredDataset> All { get; } =
    [
        new("alpaca-gpt4-data-en", "AI-ModelScope/alpaca-gpt4-data-en", "vicgalle/alpaca-gpt4", ["default"], DatasetFormat.Alpaca),
        new("alpaca-gpt4-data-zh", "AI-ModelScope/alpaca-gpt4-data-zh", "llm-wizard/alpaca-gpt4-data-zh", ["default"], DatasetFormat.Alpaca),
        new("sharegpt_gpt4", "AI-ModelScope/sharegpt_gpt4", "shibing624/sharegpt_gpt4", ["default", "V3_format", "zh_38K_format"], DatasetFormat.ShareGpt),
        new("self-cognition", "swift/self-cognition", "modelscope/self-cognition", ["default"], DatasetFormat.QueryResponse, SelfCognition: true),
        new("ultrafeedback-binarized-preferences-cleaned", "AI-ModelScope/ultrafeedback-binarized-preferences-cleaned", "argilla/ultrafeedback-binarized-preferences-cleaned", ["default"], DatasetFormat.Preference),
        new("ultrafeedback-binarized-preferences-cleaned-kto", "AI-ModelScope/ultrafeedback-binarized-preferences-cleaned-kto", "argilla/ultrafeedback-binarized-preferences-cleaned-kto", ["default"], DatasetFormat.Kto,
            new Dictionary<string, string> { ["prompt"] = "query", ["completion"] = "response" }),
        new("wikipedia-cn-20230720-filtered", "AI-ModelScope/wikipedia-cn-20230720-filtered", "pleisto/wikipedia-cn-20230720-filtered", ["default"], DatasetFormat.Text,
            new Dictionary<string, string> { ["completion"] = "text" }),
    ];

    /// <summary>The entry named <paramref name="name"/> (short name, ModelScope or Hugging Face id; case-insensitive), or null.</summary>
    public static RegisteredDataset? Find(string name) =>
        All.FirstOrDefault(d => d.Aliases.Any(a => string.Equals(a, name, StringComparison.OrdinalIgnoreCase)));
}
