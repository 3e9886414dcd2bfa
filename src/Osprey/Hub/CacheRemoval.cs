namespace Osprey.Hub;

/// <summary>What <see cref="CacheInventory.PlanRemoval"/> would delete, and the bytes it frees.</summary>
/// <param name="Repo">The repository the paths belong to.</param>
/// <param name="Paths">Files and folders to delete.</param>
/// <param name="FreedBytes">Bytes freed (blobs and copies, each once).</param>
/// <param name="Description">One line saying what goes, e.g. <c>revision main (snapshot 1a2b…, 2 refs, 3 blobs)</c>.</param>
public sealed record CacheRemoval(CachedRepo Repo, IReadOnlyList<string> Paths, long FreedBytes, string Description);
