using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Hub.Download;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey cache list</c>: the repositories in the local Hugging Face and ModelScope caches (hub, type, id, revisions,
/// snapshots, size, folder). <c>osprey cache rm ORG/NAME</c>: removes a repository, or one Hugging Face revision
/// (<c>--revision</c>) with the blobs only it used, and says what went (<c>--dry_run true</c>: what would go).
/// </summary>
internal sealed class CacheCommand : ICommand
{
    public string Name => "cache";

    public IReadOnlyCollection<string> Actions => ["list", "rm"];

    public string Summary => "List the models and datasets in the local hub caches, or remove one.";

    public string Usage =>
        "  list | --list            Print the cached repositories: hub, type, repo id, revisions, snapshots, size, folder.\n" +
        "  rm ORG/NAME | --rm       Remove a repository from the caches (every cache that has it unless --use_hf says which).\n" +
        "  --dataset                rm: the dataset repository of that id, not the model.\n" +
        "  --revision R             rm: remove only this Hugging Face revision (a ref such as main, or a commit hash):\n" +
        "                           its snapshot, the refs pointing at it and the blobs no other snapshot uses.\n" +
        "  --use_hf B               rm: true only the Hugging Face cache, false only the ModelScope cache.\n" +
        "  --dry_run B              rm: print what would be removed, remove nothing.\n" +
        "  Folders: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub; MODELSCOPE_CACHE, else ~/.cache/modelscope/hub.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var list = options.Bool("list", false);
        var rm = options.String("rm");
        var dataset = options.Bool("dataset", false);
        var revision = options.String("revision");
        var useHf = options.Bool("use_hf");
        var dryRun = options.Bool("dry_run", false);
        options.EnsureNoUnknownFlags();

        if (!list && rm is null)
            throw new UserError("osprey cache needs 'list' (the cached repositories) or 'rm ORG/NAME' (remove one).");
        if (list) List(CacheInventory.ScanEnvironment(), stdout);
        if (rm is not null) Remove(rm, dataset ? HubRepoType.Dataset : HubRepoType.Model, revision, useHf, dryRun, stdout);
        return 0;
    }

    internal static void List(IReadOnlyList<CachedRepo> repos, TextWriter stdout)
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

    private static void Remove(string repoId, HubRepoType type, string? revision, bool? useHf, bool dryRun, TextWriter stdout)
    {
        if (!HubCache.IsRepoId(repoId))
            throw new UserError($"cache rm {repoId}: not a hub repository id; write it as org/name (see 'osprey cache list').");
        var kind = type == HubRepoType.Dataset ? "dataset" : "model";
        var matches = CacheInventory.ScanEnvironment()
            .Where(r => r.Type == type && string.Equals(r.RepoId, repoId, StringComparison.Ordinal))
            .Where(r => useHf is null || (r.Hub == "hf") == useHf)
            .ToList();
        if (matches.Count == 0)
        {
            var where = useHf switch { true => "the Hugging Face cache", false => "the ModelScope cache", null => "the hub caches" };
            var hint = type == HubRepoType.Model ? " (pass --dataset for a dataset)" : "";
            throw new UserError($"cache rm {repoId}: no {kind} repository of that id in {where}{hint}; 'osprey cache list' shows what is there.");
        }
        if (revision is not null && matches.All(r => r.Hub != "hf"))
            throw new UserError($"cache rm {repoId} --revision {revision}: the ModelScope cache keeps one copy per repository, so there is no revision to pick; leave out --revision to remove the folder.");

        var plans = new List<CacheRemoval>();
        foreach (var repo in matches)
        {
            if (revision is not null && repo.Hub != "hf") continue; // a revision names Hugging Face snapshots only
            plans.Add(CacheInventory.PlanRemoval(repo, revision)
                ?? throw new UserError($"cache rm {repoId} --revision {revision}: {repo.Path} has no such ref or snapshot; its refs are {(repo.Refs.Count == 0 ? "none" : string.Join(", ", repo.Refs.Keys))} and its snapshots {string.Join(", ", repo.Snapshots)}."));
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
