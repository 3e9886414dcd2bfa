namespace Osprey.Datasets;

/// <summary>A <c>--dataset</c> entry resolved to files.</summary>
/// <param name="Spec">The entry.</param>
/// <param name="Files">The data files, in order.</param>
/// <param name="Registered">The registry entry when the entry named one.</param>
public sealed record ResolvedDataset(DatasetSpec Spec, IReadOnlyList<string> Files, RegisteredDataset? Registered);
