namespace Osprey.Hub.Download;

/// <summary>The kind of a hub repository; it decides the URL prefixes and the cache folder prefix.</summary>
public enum HubRepoType
{
    /// <summary>A model repository (<c>models--org--name</c> in the cache, no URL prefix).</summary>
    Model,

    /// <summary>A dataset repository (<c>datasets--org--name</c> in the cache, <c>/datasets/</c> in URLs).</summary>
    Dataset,
}

/// <summary>One file of a repository as the hub's repo-info API lists it.</summary>
/// <param name="Path">The path inside the repository (<c>rfilename</c>), with forward slashes.</param>
/// <param name="Size">The file's size in bytes when the API reported it.</param>
/// <param name="BlobId">The git blob id (sha1) when the API reported it.</param>
/// <param name="LfsSha256">The sha256 of an LFS file's content when the API reported it.</param>
public sealed record HubRepoFile(string Path, long? Size = null, string? BlobId = null, string? LfsSha256 = null);

/// <summary>A repository at one revision: the commit the revision points at and the files it holds.</summary>
/// <param name="RepoId">The repository id (org/name).</param>
/// <param name="RepoType">Model or dataset.</param>
/// <param name="Sha">The commit hash the requested revision resolved to.</param>
/// <param name="Files">The files of the repository at that commit.</param>
public sealed record HubRepoInfo(string RepoId, HubRepoType RepoType, string Sha, IReadOnlyList<HubRepoFile> Files);

/// <summary>
/// What a <c>HEAD</c> of a file's resolve URL says (the headers huggingface_hub reads): the commit
/// (<c>X-Repo-Commit</c>), the etag (<c>X-Linked-Etag</c> for LFS files, else <c>ETag</c>), the size
/// (<c>X-Linked-Size</c>, else <c>Content-Length</c>) and where the content lives (a redirect target or the URL).
/// </summary>
/// <param name="CommitHash">The commit the file was resolved at, when the server said.</param>
/// <param name="Etag">The normalized etag: a 64-hex sha256 for LFS files, a git blob sha1 otherwise.</param>
/// <param name="Size">The file's size in bytes, when the server said.</param>
/// <param name="Location">The URL to GET the content from.</param>
public sealed record HubFileMetadata(string? CommitHash, string Etag, long? Size, Uri Location);

/// <summary>Progress of a download, reported after each chunk written and when a file completes.</summary>
/// <param name="File">The repository path of the file that advanced.</param>
/// <param name="FileBytes">Bytes of that file on disk so far.</param>
/// <param name="FileTotal">That file's size, when known.</param>
/// <param name="Bytes">Bytes of all selected files done so far (reused files count as done).</param>
/// <param name="Total">The total size of all selected files, when every size is known.</param>
public readonly record struct HubDownloadProgress(string File, long FileBytes, long? FileTotal, long Bytes, long? Total);

/// <summary>What <see cref="HfHubClient.DownloadAsync"/> downloads and where.</summary>
public sealed class HubDownloadOptions
{
    /// <summary>Model (default) or dataset.</summary>
    public HubRepoType RepoType { get; init; } = HubRepoType.Model;

    /// <summary>A branch, tag or commit hash; <c>main</c> by default.</summary>
    public string Revision { get; init; } = "main";

    /// <summary>Glob patterns (fnmatch-like: <c>*</c>, <c>?</c>, <c>[abc]</c>; a trailing <c>/</c> means the whole folder); only matching files are downloaded. Null or empty: all files.</summary>
    public IReadOnlyList<string>? Include { get; init; }

    /// <summary>Glob patterns of files to skip, applied after <see cref="Include"/>.</summary>
    public IReadOnlyList<string>? Exclude { get; init; }

    /// <summary>A plain folder to download into instead of the hub cache (files land at their repository paths).</summary>
    public string? LocalDir { get; init; }

    /// <summary>How many files download at once.</summary>
    public int MaxParallel { get; init; } = 8;

    /// <summary>Called (from worker threads) as bytes arrive; must be quick and thread-safe.</summary>
    public Action<HubDownloadProgress>? Progress { get; init; }
}

/// <summary>
/// Downloads repositories from a model hub into a local folder. The Hugging Face client implements it; a
/// ModelScope client can implement it the same way so the CLI needs not know which hub it talks to.
/// </summary>
public interface IHubDownloader
{
    /// <summary>Downloads the selected files of <paramref name="repoId"/> and returns the folder holding them.</summary>
    Task<string> DownloadAsync(string repoId, HubDownloadOptions? options = null, CancellationToken cancellationToken = default);
}
