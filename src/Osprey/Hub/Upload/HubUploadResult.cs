namespace Osprey.Hub.Upload;

/// <summary>What an upload did.</summary>
/// <param name="RepoUrl">The repository's page.</param>
/// <param name="Created">True when the repository was created by this upload.</param>
/// <param name="LargeFilesSent">LFS files whose bytes were sent.</param>
/// <param name="LargeFilesReused">LFS files the hub already held (nothing sent but the commit entry).</param>
/// <param name="InlineFiles">Regular files sent inside the commit.</param>
/// <param name="Unchanged">Files already in the repository with the same content (left out of the commit).</param>
/// <param name="CommitId">The new commit (Hugging Face) or the branch committed to (ModelScope, whose commit answer carries no id); null when nothing changed and no commit was made.</param>
public sealed record HubUploadResult(string RepoUrl, bool Created, int LargeFilesSent, int LargeFilesReused, int InlineFiles, int Unchanged, string? CommitId)
{
    /// <summary>True when a commit was made.</summary>
    public bool Committed => CommitId is not null;
}
