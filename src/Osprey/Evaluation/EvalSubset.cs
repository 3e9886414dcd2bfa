namespace Osprey.Evaluation;

/// <summary>One subset of a set: the items to score and the dev items that few-shot examples come from.</summary>
public sealed record EvalSubset(string Dataset, string Subset, EvalKind Kind, IReadOnlyList<EvalItem> Items, IReadOnlyList<EvalItem> Dev, string Category);
