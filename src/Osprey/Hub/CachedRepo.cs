using Osprey.Hub.Download;

namespace Osprey.Hub;

/// <summary>One repository in a local hub cache, as <c>osprey cache list</c> shows it.</summary>
/// <param name="Hub"><c>hf</c> or <c>modelscope</c>.</param>
/// <param name="Type">Model or dataset.</param>
/// <param name="RepoId">The repository id (org/name).</param>
/// <param name="Refs">Hugging Face: the refs (branch or tag names) and the commits they point at; empty for ModelScope.</param>
/// <param name="Snapshots">Hugging Face: the snapshot folder names (commit hashes); ModelScope: empty (one copy per repo).</param>
/// <param name="SizeOnDisk">Bytes on disk: each Hugging Face blob once, plus snapshot files that are copies rather than links.</param>
/// <param name="Path">The repository's folder.</param>
public sealed record CachedRepo(string Hub, HubRepoType Type, string RepoId, IReadOnlyDictionary<string, string> Refs, IReadOnlyList<string> Snapshots, long SizeOnDisk, string Path);
