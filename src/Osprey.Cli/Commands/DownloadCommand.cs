using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Hub.Download;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey download --model ORG/NAME</c> (or <c>--dataset</c>): downloads a repository from ModelScope, or from
/// Hugging Face with <c>--use_hf true</c> / <c>USE_HF=1</c> (ms-swift's hub choice), into the hub cache (or
/// <c>--local_dir</c>), with a progress line on stderr; the snapshot folder is the last line on stdout.
/// </summary>
internal sealed class DownloadCommand : ICommand
{
    public string Name => "download";

    public string Summary => "Download a model or dataset from ModelScope or Hugging Face into the local hub cache.";

    public string Usage =>
        "  --model ORG/NAME         The model repository to download.\n" +
        "  --dataset ORG/NAME       The dataset repository to download (instead of --model).\n" +
        "  --revision R             Branch, tag or commit hash (default main).\n" +
        "  --use_hf B               true: Hugging Face (HF_ENDPOINT, HF_TOKEN); false: ModelScope (MODELSCOPE_DOMAIN,\n" +
        "                           MODELSCOPE_API_TOKEN). Default: USE_HF=1 picks Hugging Face, else ModelScope.\n" +
        "  --include GLOB...        Only files matching these patterns (e.g. '*.json' '*.safetensors').\n" +
        "  --exclude GLOB...        Skip files matching these patterns (e.g. '*.bin' 'original/').\n" +
        "  --local_dir DIR          Download into this plain folder instead of the hub cache.\n" +
        "  --offline B              true: never touch the network, print the cached snapshot or fail (also HF_HUB_OFFLINE=1).\n" +
        "  --max_workers N          Files downloaded at once (default 8).\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var model = options.String("model");
        var dataset = options.String("dataset");
        var revision = options.String("revision", "main");
        var useHf = options.Bool("use_hf");
        var include = options.List("include");
        var exclude = options.List("exclude");
        var localDir = options.String("local_dir");
        var offline = options.Bool("offline", false);
        var workers = options.Int("max_workers", 8);
        options.EnsureNoUnknownFlags();

        if (model is not null && dataset is not null)
            throw new UserError("osprey download takes --model or --dataset, not both; run it once for each.");
        var repoId = model ?? dataset
            ?? throw new UserError("osprey download needs --model ORG/NAME or --dataset ORG/NAME.");
        var flag = model is not null ? "--model" : "--dataset";
        if (!HubCache.IsRepoId(repoId))
            throw new UserError($"{flag} {repoId} is not a hub repository id; write it as org/name, e.g. Qwen/Qwen2.5-0.5B-Instruct.");
        if (string.IsNullOrWhiteSpace(revision)) throw new UserError("--revision is empty; pass a branch, tag or commit hash.");
        if (workers < 1) throw new UserError($"--max_workers must be 1 or more, got {workers}.");

        var downloadOptions = new HubDownloadOptions
        {
            RepoType = model is not null ? HubRepoType.Model : HubRepoType.Dataset,
            Revision = revision,
            Include = include.Count > 0 ? include : null,
            Exclude = exclude.Count > 0 ? exclude : null,
            LocalDir = localDir,
            MaxParallel = workers,
        };
        offline |= HubCache.OfflineFromEnvironment();

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true; // stop the download cleanly; a second Ctrl-C after this one is handled the same way
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            var folder = HubResolver.DownloadAsync(repoId, downloadOptions, useHf, offline, stderr, cancel.Token).GetAwaiter().GetResult();
            stdout.WriteLine(folder);
            return 0;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            stderr.WriteLine($"Download of {repoId} cancelled; files finished so far are kept, run the command again to resume.");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
