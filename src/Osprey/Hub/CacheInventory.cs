using Osprey.Hub.Download;

namespace Osprey.Hub;

/// <summary>
/// Lists and removes repositories in the local hub caches. Hugging Face layout (huggingface_hub's):
/// <c>{root}/{models|datasets}--{org}--{name}/{blobs,snapshots/{commit},refs/{name}}</c>, snapshot files being links to
/// blobs (or copies); ModelScope layout: <c>{root}/{models|datasets}/{org}/{name}/</c> (dots in names sometimes
/// written <c>___</c>).
/// </summary>
public static class CacheInventory
{
    /// <summary>The repositories in the Hugging Face caches <paramref name="hfRoots"/> and the ModelScope cache roots <paramref name="modelScopeRoots"/> (each holding <c>models/</c> and <c>datasets/</c>).</summary>
    public static IReadOnlyList<CachedRepo> Scan(IEnumerable<string> hfRoots, IEnumerable<string> modelScopeRoots)
    {
        var result = new List<CachedRepo>();
        foreach (var root in hfRoots.Where(Directory.Exists).Select(Path.GetFullPath).Distinct())
            foreach (var dir in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
                if (ScanHuggingFace(dir) is { } repo) result.Add(repo);
        foreach (var root in modelScopeRoots.Where(Directory.Exists).Select(Path.GetFullPath).Distinct())
            result.AddRange(ScanModelScope(root));
        return result;
    }

    /// <summary>The repositories in the caches the environment names (<see cref="HubCache.HuggingFaceRoots"/>, <see cref="HubCache.ModelScopeCacheDir"/>).</summary>
    public static IReadOnlyList<CachedRepo> ScanEnvironment() => Scan(HubCache.HuggingFaceRoots(), [HubCache.ModelScopeCacheDir()]);

    /// <summary>A Hugging Face repository folder (<c>models--org--name</c>), or null when <paramref name="dir"/> is not one.</summary>
    public static CachedRepo? ScanHuggingFace(string dir)
    {
        var name = Path.GetFileName(dir);
        HubRepoType type;
        string rest;
        if (name.StartsWith("models--", StringComparison.Ordinal)) (type, rest) = (HubRepoType.Model, name["models--".Length..]);
        else if (name.StartsWith("datasets--", StringComparison.Ordinal)) (type, rest) = (HubRepoType.Dataset, name["datasets--".Length..]);
        else return null;
        if (!rest.Contains("--", StringComparison.Ordinal)) return null;
        var refs = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var refsDir = Path.Combine(dir, "refs");
        if (Directory.Exists(refsDir))
            foreach (var f in Directory.EnumerateFiles(refsDir, "*", SearchOption.AllDirectories))
                refs[Path.GetRelativePath(refsDir, f).Replace('\\', '/')] = File.ReadAllText(f).Trim();
        var snapshotsDir = Path.Combine(dir, "snapshots");
        var snapshots = Directory.Exists(snapshotsDir)
            ? Directory.GetDirectories(snapshotsDir).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray()
            : [];
        return new CachedRepo("hf", type, rest.Replace("--", "/", StringComparison.Ordinal), refs, snapshots, SizeOf(dir), dir);
    }

    private static IEnumerable<CachedRepo> ScanModelScope(string root)
    {
        foreach (var (sub, type) in new[] { ("models", HubRepoType.Model), ("datasets", HubRepoType.Dataset) })
        {
            var top = Path.Combine(root, sub);
            if (!Directory.Exists(top)) continue;
            foreach (var owner in Directory.GetDirectories(top).Where(d => !Hidden(d)).Order(StringComparer.Ordinal))
                foreach (var repo in Directory.GetDirectories(owner).Where(d => !Hidden(d)).Order(StringComparer.Ordinal))
                {
                    var id = Path.GetFileName(owner) + "/" + Path.GetFileName(repo).Replace("___", ".", StringComparison.Ordinal);
                    yield return new CachedRepo("modelscope", type, id, new Dictionary<string, string>(), [], SizeOf(repo), repo);
                }
        }
    }

    private static bool Hidden(string dir) => Path.GetFileName(dir) is var n && (n.StartsWith('.') || n.StartsWith('_'));

    /// <summary>
    /// Bytes under <paramref name="dir"/>: regular files only (links, such as snapshot files pointing at blobs, are
    /// not followed), so a blob shared by several snapshots counts once.
    /// </summary>
    public static long SizeOf(string dir) => RegularFiles(dir).Sum(f => f.Length);

    private static IEnumerable<FileInfo> RegularFiles(string dir)
    {
        if (!Directory.Exists(dir)) yield break;
        var stack = new Stack<DirectoryInfo>();
        stack.Push(new DirectoryInfo(dir));
        while (stack.Count > 0)
        {
            var d = stack.Pop();
            foreach (var e in d.EnumerateFileSystemInfos())
            {
                if (e.LinkTarget is not null) continue;
                if (e is DirectoryInfo sub) stack.Push(sub);
                else if (e is FileInfo f) yield return f;
            }
        }
    }

    /// <summary>
    /// What removing <paramref name="repo"/> deletes: with <paramref name="revision"/> null, the whole repository
    /// folder; with a revision (a ref name such as <c>main</c>, or a snapshot's commit hash) of a Hugging Face repository,
    /// that snapshot, the refs pointing at it and the blobs no other snapshot links to (the whole folder when no
    /// snapshot would remain). Null when the revision is not in the repository.
    /// </summary>
    public static CacheRemoval? PlanRemoval(CachedRepo repo, string? revision)
    {
        ArgumentNullException.ThrowIfNull(repo);
        if (revision is null || repo.Hub != "hf")
            return new CacheRemoval(repo, WholeRepo(repo), repo.SizeOnDisk, $"the whole repository ({Describe(repo)})");
        var commit = repo.Refs.TryGetValue(revision, out var c) ? c : revision;
        if (!repo.Snapshots.Contains(commit, StringComparer.Ordinal)) return null;
        var others = repo.Snapshots.Where(s => s != commit).ToArray();
        if (others.Length == 0)
            return new CacheRemoval(repo, WholeRepo(repo), repo.SizeOnDisk, $"revision {revision} (snapshot {commit}), its only snapshot, so the whole repository ({Describe(repo)})");
        var snapshotsDir = Path.Combine(repo.Path, "snapshots");
        var kept = others.SelectMany(s => LinkedBlobs(Path.Combine(snapshotsDir, s))).ToHashSet(StringComparer.Ordinal);
        var snapshot = Path.Combine(snapshotsDir, commit);
        var blobs = LinkedBlobs(snapshot).Where(b => !kept.Contains(b)).Distinct(StringComparer.Ordinal)
            .Select(b => Path.Combine(repo.Path, "blobs", b)).Where(File.Exists).ToArray();
        var refs = repo.Refs.Where(r => r.Value == commit).Select(r => r.Key).ToArray();
        var freed = SizeOf(snapshot) + blobs.Sum(b => new FileInfo(b).Length);
        var paths = new List<string> { snapshot };
        paths.AddRange(refs.Select(r => Path.Combine(repo.Path, "refs", r.Replace('/', Path.DirectorySeparatorChar))));
        paths.AddRange(blobs);
        var refText = refs.Length == 0 ? "no refs" : "refs " + string.Join(", ", refs);
        return new CacheRemoval(repo, paths, freed, $"revision {revision} (snapshot {commit}, {refText}, {blobs.Length} unshared blob(s))");
    }

    /// <summary>Deletes the paths of <paramref name="removal"/> (files and folders; missing ones are skipped).</summary>
    public static void Execute(CacheRemoval removal)
    {
        ArgumentNullException.ThrowIfNull(removal);
        foreach (var p in removal.Paths)
        {
            if (Directory.Exists(p) && new DirectoryInfo(p).LinkTarget is null) Directory.Delete(p, recursive: true);
            else if (File.Exists(p) || new FileInfo(p).LinkTarget is not null) File.Delete(p);
        }
    }

    /// <summary>The blob names the snapshot's links point at (links whose target lies under <c>blobs/</c>).</summary>
    private static IEnumerable<string> LinkedBlobs(string snapshot)
    {
        if (!Directory.Exists(snapshot)) yield break;
        foreach (var f in new DirectoryInfo(snapshot).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var target = f.LinkTarget;
            if (target is null) continue;
            var parts = target.Replace('\\', '/').Split('/');
            if (parts.Length >= 2 && parts[^2] == "blobs") yield return parts[^1];
        }
    }

    // The repository folder, plus its lock folder (huggingface_hub's {root}/.locks/{repo folder}) when there is one.
    private static string[] WholeRepo(CachedRepo repo)
    {
        var locks = Path.Combine(Path.GetDirectoryName(repo.Path)!, ".locks", Path.GetFileName(repo.Path));
        return repo.Hub == "hf" && Directory.Exists(locks) ? [repo.Path, locks] : [repo.Path];
    }

    private static string Describe(CachedRepo repo) =>
        repo.Hub == "hf" ? $"{repo.Snapshots.Count} snapshot(s), {DownloadProgressReporter.FormatSize(repo.SizeOnDisk)}" : DownloadProgressReporter.FormatSize(repo.SizeOnDisk);
}
