using System.Net;
using System.Security.Cryptography;
using System.Text;
using static Osprey.Hub.Download.HubTransfer;

namespace Osprey.Hub.Download;

// Snapshot downloads: each selected file fetched into the cache or a local folder, resumed, verified and linked.
public sealed partial class HfHubClient
{
    /// <summary>
    /// Downloads the selected files of <paramref name="repoId"/> into the cache (or <see cref="HubDownloadOptions.LocalDir"/>)
    /// and returns the snapshot folder (or the local folder). Files already in the cache are reused. Offline,
    /// the cached snapshot of the revision is returned, or an error says it is not cached.
    /// </summary>
    public async Task<string> DownloadAsync(string repoId, HubDownloadOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new HubDownloadOptions();
        CheckRepoId(repoId);
        var kind = options.RepoType.ToString().ToLowerInvariant();
        if (_options.Offline)
        {
            if (options.LocalDir is { } local)
            {
                if (Directory.Exists(local) && Directory.EnumerateFileSystemEntries(local).Any()) return local;
                throw new OspreyException($"The {kind} repo {repoId} is not in {local} and HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE to download it.");
            }
            return HfCacheLayout.FindSnapshot(_options.CacheDir, repoId, options.RepoType, options.Revision)
                ?? throw new OspreyException($"The {kind} repo {repoId} (revision {options.Revision}) is not in the hub cache {_options.CacheDir} and HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE to download it.");
        }

        HubRepoInfo info;
        try
        {
            info = await RepoInfoAsync(repoId, options.RepoType, options.Revision, cancellationToken).ConfigureAwait(false);
        }
        catch (HubUnreachableException) when (options.LocalDir is null
            && HfCacheLayout.FindSnapshot(_options.CacheDir, repoId, options.RepoType, options.Revision) is not null)
        {
            // As huggingface_hub does: with the hub unreachable, a snapshot already in the cache is used.
            return HfCacheLayout.FindSnapshot(_options.CacheDir, repoId, options.RepoType, options.Revision)!;
        }
        var selected = HubGlob.Filter(info.Files.Select(f => f.Path), options.Include, options.Exclude).ToHashSet(StringComparer.Ordinal);
        var files = info.Files.Where(f => selected.Contains(f.Path)).ToArray();
        var progress = new ProgressTracker(options.Progress, files);

        string target;
        if (options.LocalDir is { } dir)
        {
            target = Path.GetFullPath(dir);
            CreateDirectory(target, repoId);
        }
        else
        {
            target = Path.Combine(HfCacheLayout.RepoFolder(_options.CacheDir, repoId, options.RepoType), "snapshots", info.Sha);
            CreateDirectory(target, repoId);
            // An empty refs/ marks the repo as managed by a downloader, so HubCache never takes a half-downloaded
            // snapshot for the only one (its fallback for hand-copied folders without refs).
            CreateDirectory(Path.Combine(HfCacheLayout.RepoFolder(_options.CacheDir, repoId, options.RepoType), "refs"), repoId);
        }

        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.MaxParallel), CancellationToken = cancellationToken },
            async (file, ct) =>
            {
                if (options.LocalDir is not null)
                    await DownloadToLocalDirAsync(repoId, options.RepoType, info.Sha, file, target, progress, ct).ConfigureAwait(false);
                else
                    await DownloadToCacheAsync(repoId, options.RepoType, info.Sha, file, target, progress, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);

        // The ref is written once the files are in place, so a failed download never makes a half snapshot current.
        if (options.LocalDir is null && !string.Equals(options.Revision, info.Sha, StringComparison.Ordinal))
        {
            var refFile = Path.Combine(HfCacheLayout.RepoFolder(_options.CacheDir, repoId, options.RepoType), "refs", options.Revision);
            CreateDirectory(Path.GetDirectoryName(refFile)!, repoId);
            if (!File.Exists(refFile) || File.ReadAllText(refFile).Trim() != info.Sha)
                WriteAllTextAtomic(refFile, info.Sha, repoId);
        }
        return target;
    }

    private async Task DownloadToCacheAsync(string repoId, HubRepoType type, string commit, HubRepoFile file, string snapshot, ProgressTracker progress, CancellationToken ct)
    {
        var pointer = Path.Combine(snapshot, file.Path.Replace('/', Path.DirectorySeparatorChar));
        if (IsUsable(pointer))
        {
            progress.Done(file.Path, new FileInfo(pointer).Length);
            return;
        }
        var meta = await FileMetadataAsync(repoId, type, commit, file.Path, ct).ConfigureAwait(false);
        var repoFolder = HfCacheLayout.RepoFolder(_options.CacheDir, repoId, type);
        var blobs = Path.Combine(repoFolder, "blobs");
        var blob = Path.Combine(blobs, meta.Etag);
        CreateDirectory(blobs, repoId);
        CreateDirectory(Path.GetDirectoryName(pointer)!, repoId);
        if (!File.Exists(blob))
        {
            var lockPath = Path.Combine(_options.CacheDir, ".locks", HfCacheLayout.RepoFolderName(repoId, type), meta.Etag + ".lock");
            using (await AcquireLockAsync(lockPath, repoId, file.Path, ct).ConfigureAwait(false))
            {
                if (!File.Exists(blob))
                    await FetchAsync(repoId, file.Path, meta, blob + ".incomplete", blob, progress, ct).ConfigureAwait(false);
            }
        }
        progress.Done(file.Path, new FileInfo(blob).Length);
        LinkOrCopy(blob, pointer, HfCacheLayout.RelativeBlobTarget(file.Path, meta.Etag), repoId);
    }

    private async Task DownloadToLocalDirAsync(string repoId, HubRepoType type, string commit, HubRepoFile file, string localDir, ProgressTracker progress, CancellationToken ct)
    {
        var rel = file.Path.Replace('/', Path.DirectorySeparatorChar);
        var dest = Path.Combine(localDir, rel);
        var metaDir = Path.Combine(localDir, ".cache", "huggingface", "download");
        var metaFile = Path.Combine(metaDir, rel + ".metadata");
        // huggingface_hub's local-dir metadata: commit hash, etag, timestamp, one a line.
        if (File.Exists(dest) && File.Exists(metaFile))
        {
            var lines = File.ReadAllLines(metaFile);
            if (lines.Length >= 2 && lines[0] == commit)
            {
                progress.Done(file.Path, new FileInfo(dest).Length);
                return;
            }
        }
        var meta = await FileMetadataAsync(repoId, type, commit, file.Path, ct).ConfigureAwait(false);
        CreateDirectory(Path.GetDirectoryName(dest)!, repoId);
        CreateDirectory(Path.GetDirectoryName(metaFile)!, repoId);
        using (await AcquireLockAsync(Path.Combine(metaDir, rel + ".lock"), repoId, file.Path, ct).ConfigureAwait(false))
        {
            var existing = File.Exists(metaFile) ? File.ReadAllLines(metaFile) : [];
            if (!(File.Exists(dest) && existing.Length >= 2 && existing[1] == meta.Etag))
                await FetchAsync(repoId, file.Path, meta, Path.Combine(metaDir, rel + ".incomplete"), dest, progress, ct).ConfigureAwait(false);
            WriteAllTextAtomic(metaFile, $"{meta.CommitHash ?? commit}\n{meta.Etag}\n{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0:F3}\n", repoId);
        }
        progress.Done(file.Path, new FileInfo(dest).Length);
    }

    /// <summary>Streams the content into <paramref name="incomplete"/> (resuming it), verifies it and renames it to <paramref name="final"/>.</summary>
    private async Task FetchAsync(string repoId, string path, HubFileMetadata meta, string incomplete, string final, ProgressTracker progress, CancellationToken cancellationToken)
    {
        await WithRetriesAsync($"file {path} of repo {repoId}", async ct =>
        {
            long have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            if (meta.Size is { } total && have > total) { DeleteQuietly(incomplete); have = 0; }
            if (meta.Size is { } t && have == t && t > 0) return true; // complete from an earlier attempt
            using var resp = await SendAsync(HttpMethod.Get, meta.Location, have, RedirectMode.All, ct).ConfigureAwait(false);
            if (resp.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                DeleteQuietly(incomplete);
                throw new TransientException($"range not satisfiable for {path}");
            }
            ThrowForStatus(resp, repoId, null, path);
            var append = have > 0 && resp.StatusCode == HttpStatusCode.PartialContent;
            if (!append) have = 0;
            progress.Start(path, have, meta.Size);
            await using var body = await resp.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            have = await HubTransfer.StreamToFileAsync(Words, body, incomplete, append, have, _options.RequestTimeout, repoId, path,
                (n, held) => progress.Advance(path, n, held, meta.Size), ct).ConfigureAwait(false);
            if (meta.Size is { } expected && have != expected)
                throw new TransientException($"got {have} of {expected} bytes");
            return true;
        }, cancellationToken).ConfigureAwait(false);

        Verify(incomplete, meta, repoId, path);
        try
        {
            File.Move(incomplete, final, overwrite: true);
        }
        catch (IOException e)
        {
            throw DiskError(e, final, repoId, path);
        }
        catch (UnauthorizedAccessException e)
        {
            throw PermissionError(e, final, repoId);
        }
    }

    private void Verify(string file, HubFileMetadata meta, string repoId, string path)
    {
        if (HfCacheLayout.IsSha256(meta.Etag))
        {
            string got;
            using (var fs = File.OpenRead(file)) got = Convert.ToHexStringLower(SHA256.HashData(fs));
            if (got != meta.Etag)
            {
                DeleteQuietly(file);
                throw new OspreyException($"File {path} of repo {repoId} failed its sha256 check (expected {meta.Etag}, got {got}): the partial download was deleted, run the download again.");
            }
        }
        else if (HfCacheLayout.IsCommitHash(meta.Etag) && _options.VerifyGitBlobsUpTo > 0 && new FileInfo(file).Length <= _options.VerifyGitBlobsUpTo)
        {
            var got = GitBlobSha1(File.ReadAllBytes(file));
            if (got != meta.Etag)
            {
                DeleteQuietly(file);
                throw new OspreyException($"File {path} of repo {repoId} failed its git sha1 check (expected {meta.Etag}, got {got}): the partial download was deleted, run the download again.");
            }
        }
    }

    /// <summary>The git blob id of <paramref name="content"/>: sha1 of <c>"blob {size}\0"</c> followed by the bytes.</summary>
    public static string GitBlobSha1(ReadOnlySpan<byte> content)
    {
        var header = Encoding.ASCII.GetBytes($"blob {content.Length}\0");
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha.AppendData(header);
        sha.AppendData(content);
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Per-file and overall byte counts, safe to update from parallel downloads.</summary>
    private sealed class ProgressTracker
    {
        private readonly Action<HubDownloadProgress>? _callback;
        private readonly long? _total;
        private readonly Dictionary<string, long> _perFile = new(StringComparer.Ordinal);
        private readonly Lock _gate = new();
        private long _bytes;

        public ProgressTracker(Action<HubDownloadProgress>? callback, IReadOnlyList<HubRepoFile> files)
        {
            _callback = callback;
            _total = files.All(f => f.Size is not null) ? files.Sum(f => f.Size!.Value) : null;
        }

        private void Set(string file, long fileBytes, long? fileTotal)
        {
            HubDownloadProgress p;
            lock (_gate)
            {
                _perFile.TryGetValue(file, out var before);
                _bytes += fileBytes - before;
                _perFile[file] = fileBytes;
                p = new HubDownloadProgress(file, fileBytes, fileTotal, _bytes, _total);
            }
            _callback?.Invoke(p);
        }

        public void Start(string file, long have, long? total) => Set(file, have, total);

        public void Advance(string file, int n, long have, long? total) => Set(file, have, total);

        public void Done(string file, long size) => Set(file, size, size);
    }
}
