namespace Osprey.Hub;

/// <summary>
/// Finds hub datasets a user already downloaded (by Osprey, <c>huggingface-cli</c> or modelscope's tools). It lives
/// in Hub, below Datasets, so that resolving a dataset id (<see cref="HubResolver.ResolveDatasetAsync"/>) needs
/// nothing from the dataset readers; the readers take <see cref="DataFileExtensions"/> from here.
/// </summary>
public static class HubDatasetCache
{
    /// <summary>File extensions Osprey reads as datasets; a cached snapshot counts only when it holds one of them.</summary>
    public static readonly string[] DataFileExtensions = [".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt"];

    /// <summary>True when <paramref name="path"/> has one of the <see cref="DataFileExtensions"/> (any case).</summary>
    public static bool IsDataFile(string path) =>
        DataFileExtensions.Contains(Path.GetExtension(path).ToLowerInvariant(), StringComparer.Ordinal);

    /// <summary>ModelScope dataset cache folders (<c>$MODELSCOPE_CACHE/datasets</c>, else <c>~/.cache/modelscope/hub/datasets</c>).</summary>
    public static IReadOnlyList<string> ModelScopeRoots()
    {
        var ms = Environment.GetEnvironmentVariable("MODELSCOPE_CACHE");
        var baseDir = !string.IsNullOrEmpty(ms) ? ms : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "modelscope", "hub");
        return [Path.Combine(baseDir, "datasets")];
    }

    /// <summary>
    /// The local folder of a hub dataset: Hugging Face's <c>datasets--org--name/snapshots/&lt;refs/main&gt;</c> (a single
    /// snapshot when refs are missing), else ModelScope's <c>datasets/org/name</c>; null when not cached.
    /// </summary>
    public static string? Find(string repoId, IEnumerable<string>? huggingFaceRoots = null, IEnumerable<string>? modelScopeRoots = null)
    {
        ArgumentNullException.ThrowIfNull(repoId);
        var folder = "datasets--" + repoId.Replace("/", "--", StringComparison.Ordinal);
        foreach (var root in huggingFaceRoots ?? HubCache.HuggingFaceRoots())
        {
            var repo = Path.Combine(root, folder);
            var snapshots = Path.Combine(repo, "snapshots");
            if (!Directory.Exists(snapshots)) continue;
            var refFile = Path.Combine(repo, "refs", "main");
            if (File.Exists(refFile))
            {
                var dir = Path.Combine(snapshots, File.ReadAllText(refFile).Trim());
                if (Directory.Exists(dir) && HasDataFiles(dir)) return dir;
            }
            var all = Directory.GetDirectories(snapshots).Where(HasDataFiles).ToArray();
            if (all.Length == 1) return all[0];
        }
        var parts = repoId.Split('/');
        if (parts.Length != 2) return null;
        foreach (var root in modelScopeRoots ?? ModelScopeRoots())
        {
            foreach (var name in new[] { parts[1], parts[1].Replace(".", "___", StringComparison.Ordinal) })
            {
                var dir = Path.Combine(root, parts[0], name);
                if (Directory.Exists(dir) && HasDataFiles(dir)) return dir;
            }
        }
        return null;
    }

    private static bool HasDataFiles(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Any(IsDataFile);
}
