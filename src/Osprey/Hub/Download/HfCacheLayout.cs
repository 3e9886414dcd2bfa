using System.Text.RegularExpressions;

namespace Osprey.Hub.Download;

/// <summary>
/// The huggingface_hub cache layout, so Python tools and Osprey share files:
/// <c>{cache}/{models|datasets}--{org}--{name}/blobs/{etag}</c>, <c>snapshots/{commit}/{path}</c> (a relative
/// symlink to the blob, or a copy where symlinks fail), <c>refs/{revision}</c> (the commit hash), and lock
/// files under <c>{cache}/.locks/{repo folder}/{etag}.lock</c>.
/// </summary>
public static partial class HfCacheLayout
{
    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Hex();

    /// <summary>True when <paramref name="revision"/> is a full commit hash.</summary>
    public static bool IsCommitHash(string revision) => CommitHash().IsMatch(revision);

    /// <summary>True when <paramref name="etag"/> is an LFS sha256 (64 hex characters).</summary>
    public static bool IsSha256(string etag) => Sha256Hex().IsMatch(etag);

    /// <summary>The repository's folder name: <c>models--org--name</c> or <c>datasets--org--name</c>.</summary>
    public static string RepoFolderName(string repoId, HubRepoType type) =>
        (type == HubRepoType.Dataset ? "datasets--" : "models--") + repoId.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>The repository's folder in <paramref name="cacheDir"/>.</summary>
    public static string RepoFolder(string cacheDir, string repoId, HubRepoType type) => Path.Combine(cacheDir, RepoFolderName(repoId, type));

    /// <summary>The snapshot folder of <paramref name="revision"/> in the cache, or null when the cache lacks it.</summary>
    public static string? FindSnapshot(string cacheDir, string repoId, HubRepoType type, string revision)
    {
        var repo = RepoFolder(cacheDir, repoId, type);
        var commit = revision;
        var refFile = Path.Combine(repo, "refs", revision);
        if (!IsCommitHash(revision))
        {
            if (!File.Exists(refFile)) return null;
            commit = File.ReadAllText(refFile).Trim();
        }
        var dir = Path.Combine(repo, "snapshots", commit);
        return commit.Length > 0 && Directory.Exists(dir) ? dir : null;
    }

    /// <summary>The relative symlink target from a snapshot file at repository path <paramref name="path"/> to blob <paramref name="etag"/>.</summary>
    public static string RelativeBlobTarget(string path, string etag)
    {
        var depth = path.Count(c => c == '/');
        return string.Concat(Enumerable.Repeat("../", depth + 2)) + "blobs/" + etag;
    }

    /// <summary>Normalizes an etag header value: drops a weak <c>W/</c> prefix and the quotes.</summary>
    public static string NormalizeEtag(string etag)
    {
        var e = etag.Trim();
        if (e.StartsWith("W/", StringComparison.Ordinal)) e = e[2..];
        return e.Trim('"');
    }
}
