namespace Osprey.Hub.Upload;

/// <summary>What to upload where: a local folder into the repository <see cref="RepoId"/> as one commit.</summary>
public sealed record HubUploadRequest
{
    /// <summary>The repository, org/name; created when missing.</summary>
    public required string RepoId { get; init; }

    /// <summary>The local folder whose files become the repository's files (same relative paths).</summary>
    public required string Folder { get; init; }

    /// <summary>Create the repository private (an existing repository keeps its visibility).</summary>
    public bool Private { get; init; }

    /// <summary>The commit message.</summary>
    public string CommitMessage { get; init; } = "Upload with osprey";

    /// <summary>The branch to commit to; null is the hub's default (main on Hugging Face, master on ModelScope).</summary>
    public string? Revision { get; init; }

    /// <summary>Relative paths ('/'-separated) left out of the upload, e.g. a checkpoint's optimizer state.</summary>
    public IReadOnlyCollection<string> Exclude { get; init; } = [];

    /// <summary>Where progress lines go (stderr in <c>osprey</c>); null is silent.</summary>
    public TextWriter? Log { get; init; }
}
