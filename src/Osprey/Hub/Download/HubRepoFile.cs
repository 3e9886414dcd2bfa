namespace Osprey.Hub.Download;

/// <summary>One file of a repository as the hub's repo-info API lists it.</summary>
/// <param name="Path">The path inside the repository (<c>rfilename</c>), with forward slashes.</param>
/// <param name="Size">The file's size in bytes when the API reported it.</param>
/// <param name="BlobId">The git blob id (sha1) when the API reported it.</param>
/// <param name="LfsSha256">The sha256 of an LFS file's content when the API reported it.</param>
public sealed record HubRepoFile(string Path, long? Size = null, string? BlobId = null, string? LfsSha256 = null);
