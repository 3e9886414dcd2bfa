namespace Osprey.Datasets;

/// <summary>One <c>--dataset</c> entry, parsed: <c>path_or_id[:subset][#N]</c>.</summary>
/// <param name="Text">The entry as given.</param>
/// <param name="Target">The path, registry name or hub id.</param>
/// <param name="Subset">The subset after ':' (null when none).</param>
/// <param name="Sample">N of <c>#N</c> (null when none).</param>
public sealed record DatasetSpec(string Text, string Target, string? Subset, int? Sample);
