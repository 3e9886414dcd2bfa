namespace Osprey.Hub.Download;

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
