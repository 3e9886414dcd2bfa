namespace Osprey.Hub.Download;

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
