using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using static Osprey.Hub.Download.HubTransfer;

namespace Osprey.Hub.Download;

/// <summary>
/// A Hugging Face Hub download client: repository info through <c>/api/{models|datasets}/{repo}/revision/{rev}</c>,
/// files through <c>/{repo}/resolve/{commit}/{path}</c> (HEAD without following cross-host redirects for the
/// etag and commit, then GET following them), stored in the huggingface_hub cache layout
/// (<see cref="HfCacheLayout"/>) or a plain folder. Downloads stream to <c>.incomplete</c> files, resume
/// with HTTP ranges, retry transient failures with exponential backoff, are verified (sha256 for LFS
/// files, git sha1 for small ones) and renamed into place atomically under a per-blob lock file.
/// </summary>
public sealed class HfHubClient : IHubDownloader, IDisposable
{
    private readonly HubClientOptions _options;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <summary>Creates a client from <paramref name="options"/> (default: <see cref="HubClientOptions.FromEnvironment"/>).</summary>
    public HfHubClient(HubClientOptions? options = null)
        : this(options ?? HubClientOptions.FromEnvironment(), null) { }

    /// <summary>Creates a client that sends through <paramref name="handler"/> (which must not follow redirects itself).</summary>
    public HfHubClient(HubClientOptions options, HttpMessageHandler? handler)
    {
        _options = options;
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.RequestTimeout,
        };
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("osprey/0.1");
        _ownsHttp = true;
    }

    /// <summary>The options this client uses.</summary>
    public HubClientOptions Options => _options;

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsHttp) _http.Dispose();
    }

    private string Endpoint => _options.Endpoint.TrimEnd('/');

    private static string TypeSegment(HubRepoType type) => type == HubRepoType.Dataset ? "datasets" : "models";

    private static string Escape(string path) => string.Join('/', path.Split('/').Select(Uri.EscapeDataString));

    /// <summary>The resolve URL of <paramref name="path"/> at <paramref name="revision"/>.</summary>
    public string ResolveUrl(string repoId, HubRepoType type, string revision, string path) =>
        $"{Endpoint}/{(type == HubRepoType.Dataset ? "datasets/" : "")}{repoId}/resolve/{Uri.EscapeDataString(revision)}/{Escape(path)}";

    // ---------------------------------------------------------------- repo info

    /// <summary>The commit and files of <paramref name="repoId"/> at <paramref name="revision"/> (with sizes and LFS hashes).</summary>
    public async Task<HubRepoInfo> RepoInfoAsync(string repoId, HubRepoType type = HubRepoType.Model, string revision = "main", CancellationToken cancellationToken = default)
    {
        CheckRepoId(repoId);
        if (_options.Offline)
            throw new OspreyException($"Cannot query {type.ToString().ToLowerInvariant()} repo {repoId} because HF_HUB_OFFLINE is set: unset it to reach {Endpoint}.");
        var url = new Uri($"{Endpoint}/api/{TypeSegment(type)}/{repoId}/revision/{Uri.EscapeDataString(revision)}?blobs=true");
        var json = await WithRetriesAsync($"repo info of {repoId}", async ct =>
        {
            using var resp = await SendAsync(HttpMethod.Get, url, 0, RedirectMode.All, ct).ConfigureAwait(false);
            ThrowForStatus(resp, repoId, revision, null);
            return await ReadBodyAsync(resp, ct).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        return ParseRepoInfo(repoId, type, json);
    }

    internal static HubRepoInfo ParseRepoInfo(string repoId, HubRepoType type, string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var sha = root.TryGetProperty("sha", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "";
        if (sha.Length == 0) throw new OspreyException($"The hub's answer for repo {repoId} has no commit sha: check HF_ENDPOINT points at a Hugging Face hub.");
        var files = new List<HubRepoFile>();
        if (root.TryGetProperty("siblings", out var siblings) && siblings.ValueKind == JsonValueKind.Array)
        {
            foreach (var sib in siblings.EnumerateArray())
            {
                if (!sib.TryGetProperty("rfilename", out var name) || name.ValueKind != JsonValueKind.String) continue;
                long? size = sib.TryGetProperty("size", out var sz) && sz.ValueKind == JsonValueKind.Number ? sz.GetInt64() : null;
                string? blobId = sib.TryGetProperty("blobId", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString() : null;
                string? lfs = null;
                if (sib.TryGetProperty("lfs", out var l) && l.ValueKind == JsonValueKind.Object)
                {
                    if (l.TryGetProperty("sha256", out var h) && h.ValueKind == JsonValueKind.String) lfs = h.GetString();
                    if (l.TryGetProperty("size", out var ls) && ls.ValueKind == JsonValueKind.Number) size = ls.GetInt64();
                }
                files.Add(new HubRepoFile(name.GetString()!, size, blobId, lfs));
            }
        }
        return new HubRepoInfo(repoId, type, sha, files);
    }

    // ---------------------------------------------------------------- file metadata

    /// <summary>HEADs the resolve URL of one file: its commit, etag, size and content location.</summary>
    public Task<HubFileMetadata> FileMetadataAsync(string repoId, HubRepoType type, string revision, string path, CancellationToken cancellationToken = default)
    {
        var url = new Uri(ResolveUrl(repoId, type, revision, path));
        return WithRetriesAsync($"file {path} of repo {repoId}", async ct =>
        {
            using var resp = await SendAsync(HttpMethod.Head, url, 0, RedirectMode.RelativeWithoutMetadata, ct).ConfigureAwait(false);
            ThrowForStatus(resp, repoId, revision, path);
            var h = resp.Headers;
            var commit = Header(resp, "X-Repo-Commit");
            var etag = Header(resp, "X-Linked-Etag") ?? Header(resp, "ETag")
                ?? throw new OspreyException($"The hub sent no ETag for file {path} of repo {repoId}: check HF_ENDPOINT points at a Hugging Face hub.");
            long? size = long.TryParse(Header(resp, "X-Linked-Size"), out var ls) ? ls : resp.Content.Headers.ContentLength;
            var location = url;
            if ((int)resp.StatusCode is >= 300 and < 400 && resp.Headers.Location is { } loc)
                location = loc.IsAbsoluteUri ? loc : new Uri(resp.RequestMessage?.RequestUri ?? url, loc);
            else if (resp.RequestMessage?.RequestUri is { } final) location = final;
            return new HubFileMetadata(commit, HfCacheLayout.NormalizeEtag(etag), size, location);
        }, cancellationToken);
    }

    private static string? Header(HttpResponseMessage resp, string name)
    {
        if (resp.Headers.TryGetValues(name, out var v)) return v.FirstOrDefault();
        if (resp.Content.Headers.TryGetValues(name, out var c)) return c.FirstOrDefault();
        return null;
    }

    // ---------------------------------------------------------------- snapshot download

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

    // ---------------------------------------------------------------- HTTP

    private enum RedirectMode { All, RelativeWithoutMetadata }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, long rangeFrom, RedirectMode mode, CancellationToken ct)
    {
        var endpointHost = new Uri(Endpoint).Authority;
        for (var hop = 0; ; hop++)
        {
            using var req = new HttpRequestMessage(method, url);
            // The token goes to the hub only, never to a CDN on another host.
            if (_options.Token is { } token && string.Equals(url.Authority, endpointHost, StringComparison.OrdinalIgnoreCase))
                req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            req.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (rangeFrom > 0) req.Headers.Range = new RangeHeaderValue(rangeFrom, null);
            var resp = await HubTransfer.SendWithTimeoutAsync(_http, req, url, _options.RequestTimeout, ct).ConfigureAwait(false);
            var status = (int)resp.StatusCode;
            if (status is >= 300 and < 400 && resp.Headers.Location is { } loc && hop < 10)
            {
                var relative = !loc.IsAbsoluteUri || loc.OriginalString.StartsWith('/');
                var hasMetadata = resp.Headers.Contains("X-Repo-Commit") || resp.Headers.Contains("X-Linked-Etag");
                if (mode == RedirectMode.All || (relative && !hasMetadata))
                {
                    var next = loc.IsAbsoluteUri && !loc.OriginalString.StartsWith('/') ? loc : new Uri(url, loc.OriginalString);
                    resp.Dispose();
                    url = next;
                    continue;
                }
            }
            return resp;
        }
    }

    private void ThrowForStatus(HttpResponseMessage resp, string repoId, string? revision, string? path)
    {
        var status = (int)resp.StatusCode;
        if (status is >= 200 and < 400) return;
        var code = Header(resp, "X-Error-Code");
        var what = path is null ? $"repo {repoId}" : $"file {path} of repo {repoId}";
        if (status is 401 or 403 || code == "GatedRepo")
            throw new OspreyException($"The repo {repoId} is gated or private ({status} from {Endpoint}): set HF_TOKEN to a token with access{(status == 403 ? " and accept the repo's terms on its page" : "")}.");
        if (status == 404)
        {
            if (code == "EntryNotFound" || (code is null && path is not null))
                throw new OspreyException($"The file {path} of repo {repoId} was not found on {Endpoint}: check the file name and revision.");
            if (code == "RevisionNotFound")
                throw new OspreyException($"The revision {revision} of repo {repoId} was not found on {Endpoint}: check the branch, tag or commit.");
            throw new OspreyException($"The repo or revision was not found: {repoId} (revision {revision ?? "?"}) is not on {Endpoint}; check the id, the revision and the repo type, or set HF_TOKEN if it is private.");
        }
        if (status is >= 500 or 429 or 408)
            throw new TransientException($"{status} {resp.ReasonPhrase} for {what}");
        throw new OspreyException($"The hub answered {status} {resp.ReasonPhrase} for {what}: check the repo id and HF_ENDPOINT ({Endpoint}).");
    }

    private static async Task<string> ReadBodyAsync(HttpResponseMessage resp, CancellationToken ct) =>
        await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);

    /// <summary>The hub could not be reached (or kept failing) after all retries.</summary>
    private sealed class HubUnreachableException(string message, Exception inner) : OspreyException(message, inner);

    private Task<T> WithRetriesAsync<T>(string what, Func<CancellationToken, Task<T>> attempt, CancellationToken ct) =>
        HubTransfer.WithRetriesAsync(what, Endpoint, "HF_ENDPOINT", _options.MaxRetries, _options.InitialBackoff, _options.MaxBackoff,
            (message, inner) => new HubUnreachableException(message, inner), attempt, ct);

    // ---------------------------------------------------------------- files and locks

    private static readonly HubTransfer.Wording Words = new("repo", "HF_HUB_CACHE");

    private static OspreyException DiskError(IOException e, string where, string repoId, string file) => HubTransfer.DiskError(Words, e, where, repoId, file);

    private static OspreyException PermissionError(Exception e, string where, string repoId) => HubTransfer.PermissionError(Words, e, where, repoId);

    private static void CreateDirectory(string dir, string repoId) => HubTransfer.CreateDirectory(Words, dir, repoId);

    private static void WriteAllTextAtomic(string path, string text, string repoId)
    {
        var tmp = path + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            File.WriteAllText(tmp, text);
            File.Move(tmp, path, overwrite: true);
        }
        catch (UnauthorizedAccessException e)
        {
            throw PermissionError(e, path, repoId);
        }
        catch (IOException e)
        {
            DeleteQuietly(tmp);
            throw DiskError(e, path, repoId, Path.GetFileName(path));
        }
    }

    /// <summary>True when <paramref name="pointer"/> is a file, or a symlink whose blob exists (a dangling one is not).</summary>
    private static bool IsUsable(string pointer)
    {
        var info = new FileInfo(pointer);
        if (!info.Exists) return false;
        if (info.LinkTarget is null) return true;
        return info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    private static void LinkOrCopy(string blob, string pointer, string relativeTarget, string repoId)
    {
        if (IsUsable(pointer)) return;
        if (new FileInfo(pointer).LinkTarget is not null) DeleteQuietly(pointer); // dangling: its blob was removed
        try
        {
            File.CreateSymbolicLink(pointer, relativeTarget);
            return;
        }
        catch (IOException) when (File.Exists(pointer))
        {
            return; // another downloader made it meanwhile
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            // Symlinks unavailable (Windows without developer mode, some network filesystems): copy instead.
        }
        var tmp = pointer + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            File.Copy(blob, tmp, overwrite: true);
            File.Move(tmp, pointer, overwrite: true);
        }
        catch (UnauthorizedAccessException e)
        {
            throw PermissionError(e, pointer, repoId);
        }
        catch (IOException e)
        {
            DeleteQuietly(tmp);
            throw DiskError(e, pointer, repoId, Path.GetFileName(pointer));
        }
    }

    private Task<IDisposable> AcquireLockAsync(string lockPath, string repoId, string file, CancellationToken ct) =>
        HubTransfer.AcquireLockAsync(Words, lockPath, _options.LockTimeout, repoId, file, ct);

    private static void CheckRepoId(string repoId)
    {
        if (!HubCache.IsRepoId(repoId))
            throw new OspreyException($"{repoId} is not a hub repo id: pass one such as Qwen/Qwen2.5-0.5B-Instruct.");
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
