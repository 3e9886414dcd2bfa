using Osprey.Hub.Download;

namespace Osprey.Hub;

/// <summary>
/// The library call under <c>osprey cache</c>: lists the repositories in the local Hugging Face and ModelScope caches
/// (hub, type, id, revisions, snapshots, size, folder), or removes one, or one Hugging Face revision with the blobs
/// only it used, and says what went.
/// </summary>
public static class CacheMaintenance
{
    /// <summary>Runs <paramref name="options"/>: the list, then the removal, each printed to <paramref name="stdout"/>.</summary>
    /// <exception cref="OspreyException">Neither list nor rm, or the removal cannot be done.</exception>
    public static void Run(CacheOptions options, TextWriter stdout)
    {
        if (!options.List && options.Rm is null)
            throw new OspreyException("osprey cache needs 'list' (the cached repositories) or 'rm ORG/NAME' (remove one).");
        if (options.List) List(CacheInventory.ScanEnvironment(), stdout);
        if (options.Rm is not null) Remove(options.Rm, options.Dataset ? HubRepoType.Dataset : HubRepoType.Model, options.Revision, options.UseHf, options.DryRun, stdout);
    }

    /// <summary>The cached repositories as a table, then their count and total size.</summary>
    public static void List(IReadOnlyList<CachedRepo> repos, TextWriter stdout)
    {
        if (repos.Count == 0)
        {
            stdout.WriteLine($"No repositories in the hub caches ({string.Join(", ", HubCache.HuggingFaceRoots().Append(HubCache.ModelScopeCacheDir()))}).");
            return;
        }
        var rows = repos.Select(r => new[]
        {
            r.Hub,
            r.Type == HubRepoType.Dataset ? "dataset" : "model",
            r.RepoId,
            r.Hub == "hf" ? (r.Refs.Count == 0 ? "-" : string.Join(",", r.Refs.Keys)) : "-",
            r.Hub == "hf" ? r.Snapshots.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-",
            DownloadProgressReporter.FormatSize(r.SizeOnDisk),
            r.Path,
        }).ToList();
        string[] header = ["hub", "type", "repo id", "revisions", "snapshots", "size", "path"];
        var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd();
        stdout.WriteLine(Line(header));
        foreach (var r in rows) stdout.WriteLine(Line(r));
        stdout.WriteLine($"{repos.Count} repositories, {DownloadProgressReporter.FormatSize(repos.Sum(r => r.SizeOnDisk))} on disk.");
    }

    /// <summary>Removes a repository (or one Hugging Face revision) and says what went, or with <paramref name="dryRun"/> what would.</summary>
    /// <exception cref="OspreyException">The id is not a repository id, or the caches have no such repository or revision.</exception>
    public static void Remove(string repoId, HubRepoType type, string? revision, bool? useHf, bool dryRun, TextWriter stdout)
    {
        if (!HubCache.IsRepoId(repoId))
            throw new OspreyException($"cache rm {repoId}: not a hub repository id; write it as org/name (see 'osprey cache list').");
        var kind = type == HubRepoType.Dataset ? "dataset" : "model";
        var matches = CacheInventory.ScanEnvironment()
            .Where(r => r.Type == type && string.Equals(r.RepoId, repoId, StringComparison.Ordinal))
            .Where(r => useHf is null || (r.Hub == "hf") == useHf)
            .ToList();
        if (matches.Count == 0)
        {
            var where = useHf switch { true => "the Hugging Face cache", false => "the ModelScope cache", null => "the hub caches" };
            var hint = type == HubRepoType.Model ? " (pass --dataset for a dataset)" : "";
            throw new OspreyException($"cache rm {repoId}: no {kind} repository of that id in {where}{hint}; 'osprey cache list' shows what is there.");
        }
        if (revision is not null && matches.All(r => r.Hub != "hf"))
            throw new OspreyException($"cache rm {repoId} --revision {revision}: the ModelScope cache keeps one copy per repository, so there is no revision to pick; leave out --revision to remove the folder.");

        var plans = new List<CacheRemoval>();
        foreach (var repo in matches)
        {
            if (revision is not null && repo.Hub != "hf") continue; // a revision names Hugging Face snapshots only
            plans.Add(CacheInventory.PlanRemoval(repo, revision)
                ?? throw new OspreyException($"cache rm {repoId} --revision {revision}: {repo.Path} has no such ref or snapshot; its refs are {(repo.Refs.Count == 0 ? "none" : string.Join(", ", repo.Refs.Keys))} and its snapshots {string.Join(", ", repo.Snapshots)}."));
        }
        var verb = dryRun ? "Would remove" : "Removed";
        foreach (var plan in plans)
        {
            if (!dryRun) CacheInventory.Execute(plan);
            stdout.WriteLine($"{verb} {plan.Repo.Hub} {kind} {repoId}: {plan.Description}, freeing {DownloadProgressReporter.FormatSize(plan.FreedBytes)}:");
            foreach (var p in plan.Paths) stdout.WriteLine("  " + p);
        }
        if (dryRun) stdout.WriteLine("Dry run: nothing was removed.");
    }
}
