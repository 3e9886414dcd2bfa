using System.Text.RegularExpressions;

namespace Osprey.Hub;

/// <summary>
/// Finds models a user already downloaded with the Hugging Face or ModelScope tools, so <c>--model
/// Qwen/Qwen2.5-0.5B-Instruct</c> works offline when the hub cache has it. Layouts (facts of those tools):
/// Hugging Face keeps <c>models--{org}--{name}/refs/{revision}</c> (a commit hash) and
/// <c>snapshots/{hash}/</c> under <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else
/// <c>~/.cache/huggingface/hub</c>; ModelScope keeps <c>{org}/{name}/</c> under
/// <c>$MODELSCOPE_CACHE/models</c> (or <c>~/.cache/modelscope/hub/models</c>, older versions without
/// <c>models/</c>).
/// </summary>
public static partial class HubCache
{
    [GeneratedRegex(@"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")]
    private static partial Regex RepoId();

    /// <summary>True when <paramref name="text"/> looks like a hub repository id (org/name).</summary>
    public static bool IsRepoId(string text) => RepoId().IsMatch(text);

    /// <summary>The Hugging Face hub cache folders to search, from the environment.</summary>
    public static IReadOnlyList<string> HuggingFaceRoots()
    {
        var roots = new List<string>();
        var hub = Environment.GetEnvironmentVariable("HF_HUB_CACHE") ?? Environment.GetEnvironmentVariable("HUGGINGFACE_HUB_CACHE");
        if (!string.IsNullOrEmpty(hub)) roots.Add(hub);
        var home = Environment.GetEnvironmentVariable("HF_HOME");
        if (!string.IsNullOrEmpty(home)) roots.Add(Path.Combine(home, "hub"));
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) roots.Add(Path.Combine(xdg, "huggingface", "hub"));
        roots.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface", "hub"));
        return roots.Distinct().ToArray();
    }

    /// <summary>The ModelScope cache root: <c>$MODELSCOPE_CACHE</c>, else <c>~/.cache/modelscope/hub</c> (models under <c>models/</c>, datasets under <c>datasets/</c>).</summary>
    public static string ModelScopeCacheDir()
    {
        var ms = Environment.GetEnvironmentVariable("MODELSCOPE_CACHE");
        return !string.IsNullOrEmpty(ms) ? ms : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "modelscope", "hub");
    }

    /// <summary>True when <c>HF_HUB_OFFLINE</c> (or <c>MODELSCOPE_OFFLINE</c>) is 1/true/yes/on: hub ids resolve from the caches only.</summary>
    public static bool OfflineFromEnvironment() =>
        new[] { "HF_HUB_OFFLINE", "MODELSCOPE_OFFLINE" }.Any(n => Environment.GetEnvironmentVariable(n)?.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on");

    /// <summary>The ModelScope cache folders to search, from the environment.</summary>
    public static IReadOnlyList<string> ModelScopeRoots()
    {
        var roots = new List<string>();
        var baseDir = ModelScopeCacheDir();
        roots.Add(Path.Combine(baseDir, "models"));
        roots.Add(baseDir);
        return roots;
    }

    /// <summary>
    /// The snapshot folder of <paramref name="repoId"/> at <paramref name="revision"/> in a Hugging Face hub
    /// cache under one of <paramref name="roots"/>, or null. A revision that is already a snapshot name
    /// (a commit hash) is used directly; without refs, a single snapshot is taken.
    /// </summary>
    public static string? FindHuggingFace(string repoId, IEnumerable<string> roots, string revision = "main")
    {
        var folder = "models--" + repoId.Replace("/", "--", StringComparison.Ordinal);
        foreach (var root in roots)
        {
            var repo = Path.Combine(root, folder);
            var snapshots = Path.Combine(repo, "snapshots");
            if (!Directory.Exists(snapshots)) continue;
            var refFile = Path.Combine(repo, "refs", revision);
            if (File.Exists(refFile))
            {
                var hash = File.ReadAllText(refFile).Trim();
                var dir = Path.Combine(snapshots, hash);
                if (hash.Length > 0 && Directory.Exists(dir)) return dir;
            }
            var direct = Path.Combine(snapshots, revision);
            if (Directory.Exists(direct)) return direct;
            // A folder copied by hand may have snapshots but no refs; one with refs/ but no ref for the revision is a
            // download in progress or one that failed, whose snapshot may be incomplete.
            var all = Directory.GetDirectories(snapshots);
            if (all.Length == 1 && revision == "main" && !Directory.Exists(Path.Combine(repo, "refs"))) return all[0];
        }
        return null;
    }

    /// <summary>The ModelScope folder of <paramref name="repoId"/> under one of <paramref name="roots"/>, or null.</summary>
    public static string? FindModelScope(string repoId, IEnumerable<string> roots)
    {
        var parts = repoId.Split('/');
        foreach (var root in roots)
        {
            // ModelScope escapes dots in names as "___" in some versions; try both spellings.
            foreach (var name in new[] { parts[1], parts[1].Replace(".", "___", StringComparison.Ordinal) })
            {
                var dir = Path.Combine(root, parts[0], name);
                if (File.Exists(Path.Combine(dir, "config.json"))) return dir;
            }
        }
        return null;
    }

    /// <summary>
    /// Resolves <c>--model</c>: an existing folder as is, else a repository id found in the Hugging Face or
    /// ModelScope cache, else (unless <c>HF_HUB_OFFLINE=1</c>) the id downloaded now from the hub <c>USE_HF</c> picks,
    /// with a progress line on stderr (<see cref="HubResolver.ResolveModelAsync"/>); throws with a one-line message.
    /// </summary>
    public static string ResolveModel(string model) =>
        HubResolver.ResolveModelAsync(model, useHf: null, offline: false, Console.Error).GetAwaiter().GetResult();
}
