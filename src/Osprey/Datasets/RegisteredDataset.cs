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
