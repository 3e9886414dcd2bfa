using Osprey.Hub;

namespace Osprey.Server.Workbench;

/// <summary>
/// The folders the page may name (<c>--allowed_paths</c>; by default the working folder and the hub caches). A path
/// is compared after making it absolute, removing <c>..</c> and resolving symbolic links on every part that exists,
/// so neither traversal nor a link inside an allowed folder reaches outside it.
/// </summary>
public sealed class AllowedPaths
{
    /// <summary>Roots from <paramref name="given"/>, or the defaults when it is empty; relative ones are under <paramref name="workingFolder"/>.</summary>
    public AllowedPaths(IReadOnlyList<string> given, string workingFolder)
    {
        WorkingFolder = Path.GetFullPath(workingFolder);
        var roots = given.Count > 0
            ? given
            : [WorkingFolder, .. HubCache.HuggingFaceRoots(), HubCache.ModelScopeCacheDir()];
        Roots = [.. roots.Select(r => RealPath(Path.GetFullPath(Expand(r), WorkingFolder))).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The folder relative paths are taken from.</summary>
    public string WorkingFolder { get; }

    /// <summary>The allowed folders, absolute and with links resolved.</summary>
    public IReadOnlyList<string> Roots { get; }

    /// <summary>The real absolute path of <paramref name="path"/> when it lies under a root.</summary>
    /// <exception cref="OspreyException">It does not; the message names the flag and the allowed folders.</exception>
    public string Check(string flag, string path)
    {
        var full = RealPath(Path.GetFullPath(Expand(path), WorkingFolder));
        if (Roots.Any(root => IsUnder(full, root))) return full;
        throw new OspreyException($"--{flag} {path}: {full} is outside the folders this web UI may use ({string.Join(", ", Roots)}); move it under one of them or restart web-ui with --allowed_paths.");
    }

    static bool IsUnder(string path, string root) =>
        path == root || path.StartsWith(Path.EndsInDirectorySeparator(root) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    static string Expand(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal) ? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) + path[1..] : path;

    /// <summary>
    /// <paramref name="full"/> with every symbolic link among its existing parts replaced by its target (as realpath(3));
    /// parts that do not exist yet are kept as written.
    /// </summary>
    static string RealPath(string full, int depth = 0)
    {
        if (depth > 40) throw new OspreyException($"{full}: too many levels of symbolic links.");
        var root = Path.GetPathRoot(full) ?? "/";
        var current = root;
        var parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (!info.Exists) return Path.Combine([next, .. parts[(i + 1)..]]);
            if (info.LinkTarget is { } target)
            {
                var resolved = RealPath(Path.GetFullPath(target, current), depth + 1);
                return RealPath(Path.GetFullPath(Path.Combine([resolved, .. parts[(i + 1)..]])), depth + 1);
            }
            current = next;
        }
        return Path.TrimEndingDirectorySeparator(current) is { Length: > 0 } trimmed ? trimmed : current;
    }
}
