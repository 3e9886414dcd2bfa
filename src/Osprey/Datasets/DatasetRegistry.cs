namespace Osprey.Datasets;

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
