using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Osprey.Hub.Download;
using static Osprey.Hub.Download.HubTransfer;

namespace Osprey.Hub.ModelScope;

/// <summary>
/// Downloads models and datasets from ModelScope (its file-list and file APIs) into ModelScope's cache layout.
/// Models are listed with <c>GET {endpoint}/api/v1/models/{owner}/{name}/repo/files?Revision={rev}&amp;Recursive=True</c>,
/// datasets with <c>GET {endpoint}/api/v1/datasets/{owner}/{name}/repo/tree?Revision={rev}&amp;Root=/&amp;Recursive=True&amp;PageNumber={n}&amp;PageSize={size}</c>;
/// each file comes from <c>GET {endpoint}/api/v1/{models|datasets}/{owner}/{name}/repo?Revision={rev}&amp;FilePath={path}</c>
/// (redirects followed). Files land in <c>{cache}/{models|datasets}/{owner}/{name}/{path}</c> (dots of the name written
/// <c>___</c>, as the modelscope library does), streamed to an <c>.incomplete</c> file that is resumed with HTTP ranges,
/// retried with exponential backoff, checked against the listed size and sha256 and renamed into place under a per-file lock.
/// </summary>
public sealed class ModelScopeClient : IHubDownloader, IDisposable
{
    private readonly HttpClient _http;

    /// <summary>A client with <paramref name="options"/> (default: <see cref="ModelScopeClientOptions.FromEnvironment"/>).</summary>
    public ModelScopeClient(ModelScopeClientOptions? options = null) : this(options ?? ModelScopeClientOptions.FromEnvironment(), null)
    {
    }

    /// <summary>A client that sends its requests through <paramref name="handler"/> (tests; it must not follow redirects itself).</summary>
    public ModelScopeClient(ModelScopeClientOptions options, HttpMessageHandler? handler)
    {
        Options = options;
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.RequestTimeout,
            UseCookies = false,
        };
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("osprey/0.1");
    }

    /// <summary>The options in use.</summary>
    public ModelScopeClientOptions Options { get; }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    private string Endpoint => Options.Endpoint.TrimEnd('/');

    private static string TypeSegment(HubRepoType type) => type == HubRepoType.Dataset ? "datasets" : "models";

    /// <summary>ModelScope's name for a revision: <c>main</c> (the Hugging Face default) means ModelScope's default branch <c>master</c>.</summary>
    public static string NormalizeRevision(string? revision) =>
        string.IsNullOrWhiteSpace(revision) || revision == "main" ? "master" : revision;

    /// <summary>
    /// The cache folder of <paramref name="repoId"/>: <c>{cache}/{models|datasets}/{owner}/{name}</c> with dots of the name
    /// written <c>___</c> (the modelscope library's spelling), or the unescaped folder when only that one exists (older versions).
    /// </summary>
    public static string RepoFolder(string cacheDir, string repoId, HubRepoType type)
    {
        var parts = repoId.Split('/');
        var root = Path.Combine(cacheDir, TypeSegment(type), parts[0]);
        var escaped = Path.Combine(root, parts[1].Replace(".", "___", StringComparison.Ordinal));
        var plain = Path.Combine(root, parts[1]);
        return !Directory.Exists(escaped) && Directory.Exists(plain) ? plain : escaped;
    }

    /// <summary>The file-list URL of a model (<c>repo/files</c>) or one page of a dataset's tree (<c>repo/tree</c>).</summary>
    public string ListUrl(string repoId, HubRepoType type, string revision, int page = 1) =>
        type == HubRepoType.Dataset
            ? $"{Endpoint}/api/v1/datasets/{repoId}/repo/tree?Revision={Uri.EscapeDataString(revision)}&Root=%2F&Recursive=True&PageNumber={page}&PageSize={Options.DatasetPageSize}"
            : $"{Endpoint}/api/v1/models/{repoId}/repo/files?Revision={Uri.EscapeDataString(revision)}&Recursive=True";

    /// <summary>The file API URL of <paramref name="path"/> at <paramref name="revision"/>.</summary>
    public string FileUrl(string repoId, HubRepoType type, string revision, string path) =>
        $"{Endpoint}/api/v1/{TypeSegment(type)}/{repoId}/repo?Revision={Uri.EscapeDataString(revision)}&FilePath={Uri.EscapeDataString(path)}";

    // ---------------------------------------------------------------- listing

    /// <summary>The files (not folders) of <paramref name="repoId"/> at <paramref name="revision"/>: path, size, sha256 and the file's commit.</summary>
    public async Task<IReadOnlyList<ModelScopeFile>> ListFilesAsync(string repoId, HubRepoType type = HubRepoType.Model, string revision = "master", CancellationToken cancellationToken = default)
    {
        CheckRepoId(repoId);
        revision = NormalizeRevision(revision);
        if (Options.Offline)
            throw new OspreyException($"Cannot list ModelScope {Kind(type)} repo {repoId} because MODELSCOPE_OFFLINE (or HF_HUB_OFFLINE) is set: unset it to reach {Endpoint}.");
        var files = new List<ModelScopeFile>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var page = 1; ; page++)
        {
            var url = new Uri(ListUrl(repoId, type, revision, page));
            var json = await WithRetriesAsync($"the file list of {repoId}", async ct =>
            {
                using var resp = await SendAsync(url, 0, ct).ConfigureAwait(false);
                var body = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                ThrowForStatus(resp, body, repoId, type, revision, null);
                return body;
            }, cancellationToken).ConfigureAwait(false);
            var (entries, count) = ParseFileList(json, repoId, type, revision);
            var added = 0;
            foreach (var e in entries)
                if (seen.Add(e.Path)) { files.Add(e); added++; }
            // Models answer in one page; dataset trees are paged until a short (or repeated) page.
            if (type != HubRepoType.Dataset || count < Options.DatasetPageSize || added == 0 || page >= 10_000) break;
        }
        return files;
    }

    private (List<ModelScopeFile> Files, int Count) ParseFileList(string json, string repoId, HubRepoType type, string revision)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new OspreyException($"The answer of {Endpoint} for ModelScope repo {repoId} is not JSON: check MODELSCOPE_DOMAIN points at a ModelScope hub.", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new OspreyException($"The answer of {Endpoint} for ModelScope repo {repoId} is not a ModelScope file list: check MODELSCOPE_DOMAIN.");
            ThrowForCode(root, repoId, type, revision);
            var files = new List<ModelScopeFile>();
            var count = 0;
            if (root.TryGetProperty("Data", out var data) && data.ValueKind == JsonValueKind.Object
                && data.TryGetProperty("Files", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var f in list.EnumerateArray())
                {
                    count++;
                    if (f.ValueKind != JsonValueKind.Object) continue;
                    if (Str(f, "Type") is "tree") continue;
                    var path = Str(f, "Path") ?? Str(f, "Name");
                    if (string.IsNullOrEmpty(path)) continue;
                    path = path.TrimStart('/');
                    if (!IsSafePath(path))
                        throw new OspreyException($"ModelScope repo {repoId} lists an unsafe file path {path}: refusing to write outside the download folder.");
                    long? size = f.TryGetProperty("Size", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out var sz) ? sz : null;
                    var sha = Str(f, "Sha256")?.Trim().ToLowerInvariant();
                    if (sha is not null && !IsSha256(sha)) sha = null;
                    files.Add(new ModelScopeFile(path, size, sha, Str(f, "Revision")));
                }
            }
            else if (type == HubRepoType.Model)
            {
                throw new OspreyException($"The answer of {Endpoint} for ModelScope repo {repoId} has no Data.Files: check MODELSCOPE_DOMAIN points at a ModelScope hub.");
            }
            return (files, count);
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool IsSafePath(string path) =>
        !Path.IsPathRooted(path) && !path.Contains('\\', StringComparison.Ordinal) && !path.Contains(':', StringComparison.Ordinal)
        && path.Split('/').All(p => p.Length > 0 && p != "." && p != "..");

    private static bool IsSha256(string s) => s.Length == 64 && s.All(Uri.IsHexDigit);

    // ---------------------------------------------------------------- download

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

    // ---------------------------------------------------------------- HTTP

    private async Task<HttpResponseMessage> SendAsync(Uri url, long rangeFrom, CancellationToken ct)
    {
        var endpointHost = new Uri(Endpoint).Authority;
        for (var hop = 0; ; hop++)
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, url);
            // The token goes to the hub only, never to a storage host a file redirects to.
            if (Options.Token is { } token && string.Equals(url.Authority, endpointHost, StringComparison.OrdinalIgnoreCase))
            {
                req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                req.Headers.TryAddWithoutValidation("Cookie", "m_session_id=" + token);
            }
            req.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (rangeFrom > 0) req.Headers.Range = new RangeHeaderValue(rangeFrom, null);
            var resp = await HubTransfer.SendWithTimeoutAsync(_http, req, url, Options.RequestTimeout, ct).ConfigureAwait(false);
            if ((int)resp.StatusCode is >= 300 and < 400 && resp.Headers.Location is { } loc && hop < 10)
            {
                var next = loc.IsAbsoluteUri && !loc.OriginalString.StartsWith('/') ? loc : new Uri(url, loc.OriginalString);
                resp.Dispose();
                url = next;
                continue;
            }
            return resp;
        }
    }

    private void ThrowForStatus(HttpResponseMessage resp, string body, string repoId, HubRepoType type, string revision, string? path)
    {
        var status = (int)resp.StatusCode;
        if (status is >= 200 and < 300) return;
        var what = path is null ? $"ModelScope {Kind(type)} repo {repoId}" : $"file {path} of ModelScope repo {repoId}";
        if (status is 401 or 403)
            throw GatedError(repoId, type, status);
        if (status == 404)
        {
            // ModelScope often answers a JSON body with its own Code and Message; an unknown repo or revision is reported the same way.
            if (path is not null && !body.Contains("revision", StringComparison.OrdinalIgnoreCase))
                throw new OspreyException($"The file {path} of ModelScope {Kind(type)} repo {repoId} was not found on {Endpoint} (revision {revision}): check the file name and revision.");
            throw NotFoundError(repoId, type, revision);
        }
        if (status is >= 500 or 429 or 408)
            throw new TransientException($"{status} {resp.ReasonPhrase} for {what}");
        throw new OspreyException($"ModelScope answered {status} {resp.ReasonPhrase} for {what}{Message(body)}: check the repo id and MODELSCOPE_DOMAIN ({Endpoint}).");
    }

    /// <summary>ModelScope answers some errors with HTTP 200 and a JSON <c>Code</c> other than 200.</summary>
    private void ThrowForCode(JsonElement root, string repoId, HubRepoType type, string revision)
    {
        if (!root.TryGetProperty("Code", out var c)) return;
        int code;
        if (c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out var n)) code = n;
        else if (c.ValueKind == JsonValueKind.String && int.TryParse(c.GetString(), out var m)) code = m;
        else return;
        if (code == 200) return;
        if (code is 401 or 403)
            throw GatedError(repoId, type, code);
        if (code == 404) throw NotFoundError(repoId, type, revision);
        if (code >= 500 && code < 600) throw new TransientException($"code {code} for ModelScope repo {repoId}");
        throw new OspreyException($"ModelScope answered code {code} for {Kind(type)} repo {repoId} (revision {revision}){Message(root.GetRawText())}: check the repo id and revision.");
    }

    private OspreyException GatedError(string repoId, HubRepoType type, int status) =>
        new($"The ModelScope {Kind(type)} repo {repoId} is private or gated ({status} from {Endpoint}): set MODELSCOPE_API_TOKEN to an access token (from your ModelScope account settings) that can read it{(Options.Token is null ? "" : "; the token in use was refused")}.");

    private OspreyException NotFoundError(string repoId, HubRepoType type, string revision) =>
        new($"The ModelScope repo or revision was not found: {Kind(type)} repo {repoId} (revision {revision}) is not on {Endpoint}; check the id, the revision (branch or tag, default master) and the repo type, or set MODELSCOPE_API_TOKEN if it is private.");

    private static string Message(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && Str(doc.RootElement, "Message") is { Length: > 0 } m)
                return $" ({(m.Length > 200 ? m[..200] : m)})";
        }
        catch (JsonException)
        {
        }
        return "";
    }

    private static string Kind(HubRepoType type) => type == HubRepoType.Dataset ? "dataset" : "model";

    /// <summary>ModelScope could not be reached (or kept failing) after all retries.</summary>
    private sealed class HubUnreachableException(string message, Exception inner) : OspreyException(message, inner);

    private Task<T> WithRetriesAsync<T>(string what, Func<CancellationToken, Task<T>> attempt, CancellationToken ct) =>
        HubTransfer.WithRetriesAsync(what, Endpoint, "MODELSCOPE_DOMAIN", Options.MaxRetries, Options.InitialBackoff, Options.MaxBackoff,
            (message, inner) => new HubUnreachableException(message, inner), attempt, ct);

    // ---------------------------------------------------------------- files and locks

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
