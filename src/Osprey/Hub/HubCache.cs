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

    /// <summary>The ModelScope cache folders to search, from the environment.</summary>
    public static IReadOnlyList<string> ModelScopeRoots()
    {
        var roots = new List<string>();
        var ms = Environment.GetEnvironmentVariable("MODELSCOPE_CACHE");
        var baseDir = !string.IsNullOrEmpty(ms) ? ms : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "modelscope", "hub");
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
    /// ModelScope cache; throws naming the places searched.
    /// </summary>
    public static string ResolveModel(string model)
    {
        if (Directory.Exists(model)) return model;
        if (!IsRepoId(model))
            throw new OspreyException($"--model {model} is not a folder; pass a Hugging Face model folder or a hub id such as Qwen/Qwen2.5-0.5B-Instruct.");
        var hf = HuggingFaceRoots();
        var ms = ModelScopeRoots();
        var found = FindHuggingFace(model, hf) ?? FindModelScope(model, ms);
        if (found is not null) return found;
        throw new OspreyException($"--model {model} is not in the local hub caches ({string.Join(", ", hf.Concat(ms))}); download it first or pass a folder.");
    }
}
