using System.Net;
using System.Security.Cryptography;
using Osprey.Hub.Download;
using static Osprey.Hub.Download.HubTransfer;

namespace Osprey.Hub.ModelScope;

// Downloads: each listed file fetched into the cache under its lock, resumed, checked against the listed size and sha256.
public sealed partial class ModelScopeClient
{
    /// <summary>
    /// Downloads the selected files of <paramref name="repoId"/> into ModelScope's cache layout (or
    /// <see cref="HubDownloadOptions.LocalDir"/>) and returns that folder. A file already there with the listed size and
    /// sha256 is not downloaded again (so downloads of the Python modelscope library are reused). Offline, the cached
    /// folder is returned, or an error says it is not cached.
    /// </summary>
    public async Task<string> DownloadAsync(string repoId, HubDownloadOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new HubDownloadOptions();
        CheckRepoId(repoId);
        var type = options.RepoType;
        var revision = NormalizeRevision(options.Revision);
        var target = options.LocalDir is { } dir ? Path.GetFullPath(dir) : RepoFolder(Options.CacheDir, repoId, type);
        var work = options.LocalDir is not null
            ? Path.Combine(target, ".cache", "osprey")
            : Path.Combine(Options.CacheDir, ".osprey", TypeSegment(type), repoId.Split('/')[0], Path.GetFileName(target));

        if (Options.Offline)
        {
            if (HasContent(target)) return target;
            throw new OspreyException($"The ModelScope {Kind(type)} repo {repoId} is not in {target} and MODELSCOPE_OFFLINE (or HF_HUB_OFFLINE) is set: unset it to download the repo.");
        }

        IReadOnlyList<ModelScopeFile> listed;
        try
        {
            listed = await ListFilesAsync(repoId, type, revision, cancellationToken).ConfigureAwait(false);
        }
        catch (HubUnreachableException) when (HasContent(target))
        {
            return target; // as the Hugging Face client does: with the hub unreachable, what the cache holds is used
        }
        var selected = HubGlob.Filter(listed.Select(f => f.Path), options.Include, options.Exclude).ToHashSet(StringComparer.Ordinal);
        var files = listed.Where(f => selected.Contains(f.Path)).ToArray();
        var progress = new Progress(options.Progress, files);
        CreateDirectory(target, repoId);

        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.MaxParallel), CancellationToken = cancellationToken },
            async (file, ct) => await DownloadFileAsync(repoId, type, revision, file, target, work, progress, ct).ConfigureAwait(false)).ConfigureAwait(false);
        return target;
    }

    private static bool HasContent(string dir) =>
        Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any(e => !Path.GetFileName(e).StartsWith('.'));

    private async Task DownloadFileAsync(string repoId, HubRepoType type, string revision, ModelScopeFile file, string target, string work, Progress progress, CancellationToken ct)
    {
        var rel = file.Path.Replace('/', Path.DirectorySeparatorChar);
        var dest = Path.Combine(target, rel);
        var marker = Path.Combine(work, "verified", rel + ".sha256");
        if (IsCurrent(dest, marker, file))
        {
            progress.Done(file.Path, new FileInfo(dest).Length);
            return;
        }
        CreateDirectory(Path.GetDirectoryName(dest)!, repoId);
        var incomplete = Path.Combine(work, "incomplete", rel + ".incomplete");
        CreateDirectory(Path.GetDirectoryName(incomplete)!, repoId);
        using (await AcquireLockAsync(Path.Combine(work, "locks", rel + ".lock"), repoId, file.Path, ct).ConfigureAwait(false))
        {
            // Another process may have finished it while this one waited for the lock.
            if (!IsCurrent(dest, marker, file))
            {
                var url = new Uri(FileUrl(repoId, type, revision, file.Path));
                var sha = await FetchAsync(repoId, type, revision, file, url, incomplete, progress, ct).ConfigureAwait(false);
                try
                {
                    File.Move(incomplete, dest, overwrite: true);
                }
                catch (IOException e)
                {
                    throw DiskError(e, dest, repoId, file.Path);
                }
                WriteMarker(marker, dest, sha, repoId);
            }
        }
        progress.Done(file.Path, new FileInfo(dest).Length);
    }

    /// <summary>
    /// True when <paramref name="dest"/> holds the listed file: the right size and, when the list gives one, the right
    /// sha256 (taken from a marker written after an earlier check while the file's size and time are unchanged, else hashed).
    /// </summary>
    private static bool IsCurrent(string dest, string marker, ModelScopeFile file)
    {
        var info = new FileInfo(dest);
        if (!info.Exists) return false;
        if (file.Size is { } size && info.Length != size) return false;
        if (file.Sha256 is null) return true;
        try
        {
            if (File.Exists(marker))
            {
                var lines = File.ReadAllLines(marker);
                if (lines.Length >= 3 && lines[0] == file.Sha256 && lines[1] == info.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)
                    && lines[2] == info.LastWriteTimeUtc.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture))
                    return true;
            }
            string got;
            using (var fs = File.OpenRead(dest)) got = Convert.ToHexStringLower(SHA256.HashData(fs));
            if (got != file.Sha256) return false;
            WriteMarkerQuietly(marker, info, got);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void WriteMarker(string marker, string dest, string? sha, string repoId)
    {
        if (sha is null) return;
        CreateDirectory(Path.GetDirectoryName(marker)!, repoId);
        WriteMarkerQuietly(marker, new FileInfo(dest), sha);
    }

    private static void WriteMarkerQuietly(string marker, FileInfo info, string sha)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(marker)!);
            var tmp = marker + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
            File.WriteAllText(tmp, $"{sha}\n{info.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)}\n{info.LastWriteTimeUtc.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture)}\n");
            File.Move(tmp, marker, overwrite: true);
        }
        catch (IOException)
        {
            // only an optimisation: the file is hashed again next time
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Streams the file into <paramref name="incomplete"/> (resuming it), checks size and sha256, and returns the sha256.</summary>
    private async Task<string> FetchAsync(string repoId, HubRepoType type, string revision, ModelScopeFile file, Uri url, string incomplete, Progress progress, CancellationToken cancellationToken)
    {
        var path = file.Path;
        await WithRetriesAsync($"file {path} of repo {repoId}", async ct =>
        {
            long have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            if (file.Size is { } total && have > total) { DeleteQuietly(incomplete); have = 0; }
            if (file.Size is { } t && have == t && t > 0) return true; // complete from an earlier attempt
            using var resp = await SendAsync(url, have, ct).ConfigureAwait(false);
            if (resp.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                DeleteQuietly(incomplete);
                throw new TransientException($"range not satisfiable for {path}");
            }
            if ((int)resp.StatusCode is < 200 or >= 300)
            {
                var body = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                ThrowForStatus(resp, body, repoId, type, revision, path);
            }
            var append = have > 0 && resp.StatusCode == HttpStatusCode.PartialContent;
            if (!append) have = 0;
            var start = have;
            progress.Set(path, have, file.Size);
            await using var stream = await resp.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            have = await HubTransfer.StreamToFileAsync(Words, stream, incomplete, append, have, Options.RequestTimeout, repoId, path,
                (_, held) => progress.Set(path, held, file.Size), ct).ConfigureAwait(false);
            if (file.Size is null && resp.Content.Headers.ContentLength is { } cl && have - start != cl)
                throw new TransientException($"got {have - start} of {cl} bytes"); // unlisted size: the body must be whole
            if (file.Size is { } expected && have != expected)
            {
                if (have > expected) DeleteQuietly(incomplete); // a body longer than listed cannot be resumed
                throw new TransientException($"got {have} of {expected} bytes");
            }
            return true;
        }, cancellationToken).ConfigureAwait(false);

        string got;
        using (var fs = File.OpenRead(incomplete)) got = Convert.ToHexStringLower(SHA256.HashData(fs));
        if (file.Sha256 is { } want && got != want)
        {
            DeleteQuietly(incomplete);
            throw new OspreyException($"File {path} of ModelScope repo {repoId} failed its sha256 check (expected {want}, got {got}): the partial download was deleted, run the download again.");
        }
        return got;
    }

    private static readonly HubTransfer.Wording Words = new("ModelScope repo", "MODELSCOPE_CACHE");

    private static OspreyException DiskError(IOException e, string where, string repoId, string file) => HubTransfer.DiskError(Words, e, where, repoId, file);

    private static void CreateDirectory(string dir, string repoId) => HubTransfer.CreateDirectory(Words, dir, repoId);

    private Task<IDisposable> AcquireLockAsync(string lockPath, string repoId, string file, CancellationToken ct) =>
        HubTransfer.AcquireLockAsync(Words, lockPath, Options.LockTimeout, repoId, file, ct);

    private static void CheckRepoId(string repoId)
    {
        if (!HubCache.IsRepoId(repoId))
            throw new OspreyException($"{repoId} is not a ModelScope repo id: pass one such as Qwen/Qwen2.5-0.5B-Instruct.");
    }

    /// <summary>Per-file and overall byte counts, safe to update from parallel downloads.</summary>
    private sealed class Progress(Action<HubDownloadProgress>? callback, IReadOnlyList<ModelScopeFile> files)
    {
        private readonly long? _total = files.All(f => f.Size is not null) ? files.Sum(f => f.Size!.Value) : null;
        private readonly Dictionary<string, long> _perFile = new(StringComparer.Ordinal);
        private readonly Lock _gate = new();
        private long _bytes;

        public void Set(string file, long fileBytes, long? fileTotal)
        {
            if (callback is null) return;
            HubDownloadProgress p;
            lock (_gate)
            {
                _perFile.TryGetValue(file, out var before);
                _bytes += fileBytes - before;
                _perFile[file] = fileBytes;
                p = new HubDownloadProgress(file, fileBytes, fileTotal, _bytes, _total);
            }
            callback(p);
        }

        public void Done(string file, long size) => Set(file, size, size);
    }
}
