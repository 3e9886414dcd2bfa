namespace Osprey.Hub.Download;

/// <summary>A repository at one revision: the commit the revision points at and the files it holds.</summary>
/// <param name="RepoId">The repository id (org/name).</param>
/// <param name="RepoType">Model or dataset.</param>
/// <param name="Sha">The commit hash the requested revision resolved to.</param>
/// <param name="Files">The files of the repository at that commit.</param>
public sealed record HubRepoInfo(string RepoId, HubRepoType RepoType, string Sha, IReadOnlyList<HubRepoFile> Files);
