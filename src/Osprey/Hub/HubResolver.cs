using System.Net.Http;
using Osprey.Hub.Download;

namespace Osprey.Hub;

/// <summary>
/// Turns a hub id into a local folder, downloading on first use as ms-swift does: a folder is used as is; an id
/// already in the Hugging Face or ModelScope cache is used from there; otherwise it is downloaded from the hub that
/// <see cref="HubDownloaders.Create"/> picks (ModelScope unless <c>--use_hf true</c> / <c>USE_HF=1</c>). Offline
/// (<c>--offline</c>, <c>HF_HUB_OFFLINE=1</c>) only the caches are searched.
/// </summary>
public static class HubResolver
{
    /// <summary>How the hub choice was made, for messages: <c>Hugging Face</c> or <c>ModelScope</c>.</summary>
    public static string HubName(bool? useHf) => useHf ?? HubDownloaders.UseHfFromEnvironment() ? "Hugging Face" : "ModelScope";

    /// <summary>
    /// The folder of <c>--model <paramref name="model"/></c>: an existing folder, a cached hub id, or a fresh download
    /// (progress on <paramref name="log"/>; <paramref name="token"/>, <c>--hub_token</c>, replaces the environment's token).
    /// Throws <see cref="OspreyException"/> with a one-line message.
    /// </summary>
    public static async Task<string> ResolveModelAsync(string model, bool? useHf, bool offline, TextWriter? log, CancellationToken cancellationToken = default, string? token = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Directory.Exists(model)) return model;
        // A llama.cpp file: converted once into a Hugging Face folder in the cache (docs/export.md).
        if (Gguf.GgufImport.IsGgufFile(model)) return Gguf.GgufImport.CachedFolder(model, log);
        if (!HubCache.IsRepoId(model))
            throw new OspreyException($"--model {model} is not a folder; pass a Hugging Face model folder or a hub id such as Qwen/Qwen2.5-0.5B-Instruct.");
        var hf = HubCache.HuggingFaceRoots();
        var ms = HubCache.ModelScopeRoots();
        var found = HubCache.FindHuggingFace(model, hf) ?? HubCache.FindModelScope(model, ms);
        if (found is not null) return found;
        if (offline || HubCache.OfflineFromEnvironment())
            throw new OspreyException($"--model {model} is not in the local hub caches ({string.Join(", ", hf.Concat(ms))}) and offline mode is on (--offline / HF_HUB_OFFLINE); download it first with 'osprey download --model {model}' while online, or pass a folder.");
        try
        {
            return await DownloadAsync(model, new HubDownloadOptions { RepoType = HubRepoType.Model }, useHf, offline: false, log, cancellationToken, token).ConfigureAwait(false);
        }
        catch (OspreyException e)
        {
            throw new OspreyException($"--model {model} is not in the local hub caches ({string.Join(", ", hf.Concat(ms))}) and downloading it from {HubName(useHf)} failed: {e.Message}", e);
        }
    }

    /// <summary>
    /// The folder of hub dataset <paramref name="repoId"/>: the cached copy (<see cref="HubDatasetCache.Find"/>),
    /// else a fresh download; offline, an error when it is not cached.
    /// </summary>
    public static async Task<string> ResolveDatasetAsync(string repoId, bool? useHf, bool offline, TextWriter? log, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(repoId);
        if (HubDatasetCache.Find(repoId) is { } cached) return cached;
        if (offline || HubCache.OfflineFromEnvironment())
            throw new OspreyException($"--dataset {repoId} is not in the local dataset caches and offline mode is on (--offline / HF_HUB_OFFLINE); download it first with 'osprey download --dataset {repoId}' while online, or pass a local file or folder.");
        return await DownloadAsync(repoId, new HubDownloadOptions { RepoType = HubRepoType.Dataset }, useHf, offline: false, log, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Downloads through <see cref="HubDownloaders.Create"/> with a progress line on <paramref name="log"/> (when
    /// given and the options have no progress callback of their own) and returns the snapshot folder. Hub and
    /// network failures become <see cref="OspreyException"/>s; cancellation is an <see cref="OperationCanceledException"/>.
    /// <paramref name="token"/> (<c>--hub_token</c>) replaces the environment's token.
    /// </summary>
    public static async Task<string> DownloadAsync(string repoId, HubDownloadOptions options, bool? useHf, bool offline, TextWriter? log, CancellationToken cancellationToken = default, string? token = null)
    {
        ArgumentNullException.ThrowIfNull(repoId);
        ArgumentNullException.ThrowIfNull(options);
        var hub = HubName(useHf);
        var kind = options.RepoType == HubRepoType.Dataset ? "dataset" : "model";
        DownloadProgressReporter? progress = null;
        if (log is not null && options.Progress is null)
        {
            progress = new DownloadProgressReporter(log, Reporting.ProgressReporter.IsInteractive(log));
            options = new HubDownloadOptions
            {
                RepoType = options.RepoType,
                Revision = options.Revision,
                Include = options.Include,
                Exclude = options.Exclude,
                LocalDir = options.LocalDir,
                MaxParallel = options.MaxParallel,
                Progress = progress.Report,
            };
            log.WriteLine(offline
                ? $"Looking up {kind} {repoId} (revision {options.Revision}) in the {hub} cache (offline)."
                : $"Downloading {kind} {repoId} (revision {options.Revision}) from {hub}.");
        }
        var downloader = HubDownloaders.Create(useHf, offline, token);
        try
        {
            var folder = await downloader.DownloadAsync(repoId, options, cancellationToken).ConfigureAwait(false);
            progress?.Finish();
            return folder;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            progress?.Finish();
            throw;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            progress?.Finish();
            throw e switch
            {
                OspreyException o => o,
                NotImplementedException => new OspreyException($"Downloading from ModelScope is not available in this build yet; download {repoId} from Hugging Face with --use_hf true (or USE_HF=1), or with modelscope's own CLI into $MODELSCOPE_CACHE.", e),
                HttpRequestException or IOException or TimeoutException => new OspreyException($"Downloading {kind} {repoId} from {hub} failed: {e.Message}", e),
                _ => e,
            };
        }
        finally
        {
            (downloader as IDisposable)?.Dispose();
        }
    }
}
