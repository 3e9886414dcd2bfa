using Osprey.Hub.Download;

namespace Osprey.Hub;

/// <summary>
/// The library call under <c>osprey download</c>: downloads a repository from ModelScope or Hugging Face (ms-swift's
/// hub choice) into the hub cache or a plain folder, with a progress line on the log, and returns the snapshot folder.
/// </summary>
public static class HubDownload
{
    /// <summary>Checks <paramref name="options"/>, downloads (or finds in the cache) and returns the local folder.</summary>
    /// <exception cref="OspreyException">A flag is wrong, or the repository cannot be downloaded.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> fired; finished files are kept.</exception>
    public static string Run(DownloadOptions options, TextWriter log, CancellationToken cancel = default)
    {
        if (options.Model is not null && options.Dataset is not null)
            throw new OspreyException("osprey download takes --model or --dataset, not both; run it once for each.");
        var repoId = options.RepoId ?? throw new OspreyException("osprey download needs --model ORG/NAME or --dataset ORG/NAME.");
        var flag = options.Model is not null ? "--model" : "--dataset";
        if (!HubCache.IsRepoId(repoId))
            throw new OspreyException($"{flag} {repoId} is not a hub repository id; write it as org/name, e.g. Qwen/Qwen2.5-0.5B-Instruct.");
        if (string.IsNullOrWhiteSpace(options.Revision)) throw new OspreyException("--revision is empty; pass a branch, tag or commit hash.");
        if (options.MaxWorkers < 1) throw new OspreyException($"--max_workers must be 1 or more, got {options.MaxWorkers}.");

        var downloadOptions = new HubDownloadOptions
        {
            RepoType = options.Model is not null ? HubRepoType.Model : HubRepoType.Dataset,
            Revision = options.Revision,
            Include = options.Include.Count > 0 ? options.Include : null,
            Exclude = options.Exclude.Count > 0 ? options.Exclude : null,
            LocalDir = options.LocalDir,
            MaxParallel = options.MaxWorkers,
        };
        var offline = options.Offline || HubCache.OfflineFromEnvironment();
        return HubResolver.DownloadAsync(repoId, downloadOptions, options.UseHf, offline, log, cancel).GetAwaiter().GetResult();
    }
}
