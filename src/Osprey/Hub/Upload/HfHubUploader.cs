using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Hub.Download;
using static Osprey.Hub.Upload.UploadTransport;

namespace Osprey.Hub.Upload;

/// <summary>
/// Uploads a folder to a Hugging Face Hub repository as one commit, through the hub's HTTP API as huggingface_hub's
/// <c>HfApi.upload_folder</c> does: <c>POST /api/repos/create</c> (409: it exists), <c>POST
/// /api/{models|datasets}/{repo}/preupload/{revision}</c> (which files go through LFS, and the oid of each file already
/// there), the Git LFS batch API <c>POST /{repo}.git/info/lfs/objects/batch</c> (basic PUT or multipart chunk PUTs plus
/// completion, then verify) and <c>POST /api/{models|datasets}/{repo}/commit/{revision}</c> as NDJSON (a header line,
/// <c>file</c> lines with base64 content for regular files, <c>lfsFile</c> lines with the sha256 oid and size).
/// Files whose oid equals the one already in the repository are left out; when none is left no commit is made.
/// </summary>
public sealed class HfHubUploader : IDisposable
{
    private readonly HubClientOptions _options;
    private readonly HttpClient _http;

    /// <summary>An uploader with <paramref name="options"/> (endpoint, token, retries); <paramref name="handler"/> is for tests.</summary>
    public HfHubUploader(HubClientOptions options, HttpMessageHandler? handler = null)
    {
        _options = options;
        handler ??= new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = options.RequestTimeout };
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("osprey/0.1");
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();

    private string Endpoint => _options.Endpoint.TrimEnd('/');

    /// <summary>Uploads <see cref="HubUploadRequest.Folder"/> into <see cref="HubUploadRequest.RepoId"/> (a model repository).</summary>
    /// <exception cref="OspreyException">The token is missing or refused, the repository cannot be created, or the hub kept failing.</exception>
    public async Task<HubUploadResult> UploadFolderAsync(HubUploadRequest request, CancellationToken cancel = default)
    {
        var repo = request.RepoId;
        var revision = request.Revision ?? "main";
        var log = request.Log;
        if (_options.Token is null)
            throw new OspreyException($"Uploading to Hugging Face repo {repo} needs a token with write access: set HF_TOKEN or pass --hub_token.");
        var files = LocalFile.Scan(request.Folder, request.Exclude, cancel);
        log?.WriteLine($"Uploading {files.Count} files ({Size(files.Sum(f => f.Size))}) from {request.Folder} to Hugging Face repo {repo} ({Endpoint}).");

        var created = await CreateRepoAsync(repo, request.Private, cancel).ConfigureAwait(false);
        var modes = await PreuploadAsync(repo, revision, files, cancel).ConfigureAwait(false);

        var regular = new List<LocalFile>();
        var lfs = new List<LocalFile>();
        var unchanged = 0;
        foreach (var f in files)
        {
            var (mode, ignore, remoteOid) = modes.TryGetValue(f.PathInRepo, out var m) ? m : ("regular", false, null);
            if (ignore) { unchanged++; continue; }
            var isLfs = mode == "lfs";
            var localOid = isLfs ? f.Sha256 : f.GitSha1;
            if (remoteOid is not null && string.Equals(remoteOid, localOid, StringComparison.OrdinalIgnoreCase)) { unchanged++; continue; }
            (isLfs ? lfs : regular).Add(f);
        }
        if (regular.Count == 0 && lfs.Count == 0)
        {
            log?.WriteLine($"Nothing to upload: all {files.Count} files are already in {repo} with the same content; no commit made.");
            return new HubUploadResult(RepoUrl(repo), created, 0, 0, 0, unchanged, null);
        }

        var (sent, reused) = lfs.Count > 0 ? await UploadLfsAsync(repo, revision, lfs, log, cancel).ConfigureAwait(false) : (0, 0);
        var commit = await CommitAsync(repo, revision, request.CommitMessage, regular, lfs, cancel).ConfigureAwait(false);
        log?.WriteLine($"Committed {regular.Count + lfs.Count} files to {RepoUrl(repo)} ({sent} large files sent, {reused} already on the hub, {regular.Count} small files inline, {unchanged} unchanged).");
        return new HubUploadResult(RepoUrl(repo), created, sent, reused, regular.Count, unchanged, commit);
    }

    private string RepoUrl(string repo) => $"{Endpoint}/{repo}";

    // ---------------------------------------------------------------- create

    private async Task<bool> CreateRepoAsync(string repo, bool isPrivate, CancellationToken cancel)
    {
        var parts = repo.Split('/');
        var body = new JsonObject { ["name"] = parts[1], ["organization"] = parts[0], ["private"] = isPrivate, ["type"] = "model" };
        return await Retry($"the creation of repo {repo}", async ct =>
        {
            using var resp = await PostJsonAsync(new Uri($"{Endpoint}/api/repos/create"), body, ct).ConfigureAwait(false);
            if (resp.StatusCode == HttpStatusCode.Conflict) return false; // it exists: upload into it
            await ThrowForStatusAsync(resp, repo, null, "create", ct).ConfigureAwait(false);
            return true;
        }, cancel).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- preupload

    private async Task<Dictionary<string, (string Mode, bool Ignore, string? Oid)>> PreuploadAsync(string repo, string revision, IReadOnlyList<LocalFile> files, CancellationToken cancel)
    {
        var modes = new Dictionary<string, (string, bool, string?)>(StringComparer.Ordinal);
        // The hub takes at most 256 files per preupload call.
        foreach (var chunk in files.Chunk(256))
        {
            var list = new JsonArray();
            foreach (var f in chunk)
                list.Add(new JsonObject { ["path"] = f.PathInRepo, ["sample"] = Convert.ToBase64String(f.Sample), ["size"] = f.Size, ["sha"] = f.Sha256 });
            var url = new Uri($"{Endpoint}/api/models/{repo}/preupload/{Uri.EscapeDataString(revision)}");
            var json = await Retry($"the file list for repo {repo}", async ct =>
            {
                using var resp = await PostJsonAsync(url, new JsonObject { ["files"] = list.DeepClone() }, ct).ConfigureAwait(false);
                await ThrowForStatusAsync(resp, repo, null, "preupload", ct).ConfigureAwait(false);
                return await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            }, cancel).ConfigureAwait(false);
            var root = ParseJson(json, repo, "preupload");
            if (root?["files"] is not JsonArray answered)
                throw new OspreyException($"The preupload answer of {Endpoint} for repo {repo} has no files list: check HF_ENDPOINT points at a Hugging Face hub.");
            foreach (var item in answered.OfType<JsonObject>())
            {
                if (item["path"]?.GetValue<string>() is not { } path) continue;
                var mode = item["uploadMode"]?.GetValue<string>() ?? "regular";
                var ignore = item["shouldIgnore"] is JsonValue v && v.TryGetValue<bool>(out var b) && b;
                modes[path] = (mode, ignore, item["oid"] is JsonValue o && o.TryGetValue<string>(out var oid) ? oid : null);
            }
        }
        return modes;
    }

    // ---------------------------------------------------------------- LFS

    private async Task<(int Sent, int Reused)> UploadLfsAsync(string repo, string revision, List<LocalFile> files, TextWriter? log, CancellationToken cancel)
    {
        int sent = 0, reused = 0;
        var url = new Uri($"{Endpoint}/{repo}.git/info/lfs/objects/batch");
        foreach (var chunk in files.Chunk(256))
        {
            var objects = new JsonArray();
            foreach (var f in chunk.DistinctBy(f => f.Sha256)) objects.Add(new JsonObject { ["oid"] = f.Sha256, ["size"] = f.Size });
            var body = new JsonObject
            {
                ["operation"] = "upload",
                ["transfers"] = new JsonArray("basic", "multipart"),
                ["objects"] = objects,
                ["hash_algo"] = "sha256",
                ["ref"] = new JsonObject { ["name"] = revision },
            };
            var json = await Retry($"the LFS batch of repo {repo}", async ct =>
            {
                using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/vnd.git-lfs+json") };
                req.Headers.Accept.ParseAdd("application/vnd.git-lfs+json");
                Authorize(req, url, Endpoint, _options.Token, cookie: false);
                using var resp = await SendAsync(_http, req, ct).ConfigureAwait(false);
                await ThrowForStatusAsync(resp, repo, null, "LFS batch", ct).ConfigureAwait(false);
                return await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            }, cancel).ConfigureAwait(false);
            var answer = ParseJson(json, repo, "LFS batch")?["objects"] as JsonArray
                ?? throw new OspreyException($"The LFS batch answer of {Endpoint} for repo {repo} has no objects: check HF_ENDPOINT points at a Hugging Face hub.");
            var byOid = answer.OfType<JsonObject>().ToDictionary(o => o["oid"]?.GetValue<string>() ?? "", StringComparer.OrdinalIgnoreCase);
            foreach (var f in chunk)
            {
                if (!byOid.TryGetValue(f.Sha256, out var obj))
                    throw new OspreyException($"The LFS batch answer of {Endpoint} for repo {repo} does not mention {f.PathInRepo}: run the upload again.");
                if (obj["error"] is JsonObject error)
                    throw new OspreyException($"The hub refused the large file {f.PathInRepo} for repo {repo} ({error["code"]}: {error["message"]}): check the file and that the token can write to the repo.");
                if (obj["actions"]?["upload"] is not JsonObject upload)
                {
                    reused++; // the hub already holds these bytes (an earlier, interrupted upload, or another repo)
                    log?.WriteLine($"  {f.PathInRepo}: already on the hub, not sent again");
                    continue;
                }
                log?.WriteLine($"  {f.PathInRepo}: sending {Size(f.Size)}");
                var progress = UploadTransport.Progress(log, f.PathInRepo, f.Size);
                var header = upload["header"] as JsonObject;
                if (header?["chunk_size"] is not null) await MultipartAsync(repo, f, upload, header, progress, cancel).ConfigureAwait(false);
                else await PutAsync(repo, f, new Uri(Str(upload, "href", repo)), header, 0, f.Size, progress, cancel).ConfigureAwait(false);
                if (obj["actions"]?["verify"] is JsonObject verify) await VerifyAsync(repo, f, verify, cancel).ConfigureAwait(false);
                sent++;
            }
        }
        return (sent, reused);
    }

    private async Task<string?> PutAsync(string repo, LocalFile f, Uri url, JsonObject? header, long offset, long length, Action<long> progress, CancellationToken cancel) =>
        await Retry($"{f.PathInRepo} of repo {repo}", async ct =>
        {
            using var req = new HttpRequestMessage(HttpMethod.Put, url) { Content = new FileSliceContent(f.FullPath, offset, length, progress) };
            if (header is not null)
                foreach (var (name, value) in header)
                    if (name != "chunk_size" && !name.All(char.IsAsciiDigit) && value is JsonValue hv && hv.TryGetValue<string>(out var text))
                        req.Headers.TryAddWithoutValidation(name, text);
            Authorize(req, url, Endpoint, _options.Token, cookie: false);
            using var resp = await SendAsync(_http, req, ct).ConfigureAwait(false);
            await ThrowForStatusAsync(resp, repo, f.PathInRepo, "upload", ct).ConfigureAwait(false);
            return resp.Headers.ETag?.Tag ?? (resp.Headers.TryGetValues("ETag", out var e) ? e.FirstOrDefault() : null);
        }, cancel).ConfigureAwait(false);

    private async Task MultipartAsync(string repo, LocalFile f, JsonObject upload, JsonObject header, Action<long> progress, CancellationToken cancel)
    {
        var chunkSize = header["chunk_size"] is JsonValue cv && cv.TryGetValue<long>(out var n) ? n
            : long.TryParse(header["chunk_size"]?.ToString(), out var m) ? m : 0;
        if (chunkSize <= 0) throw new OspreyException($"The hub sent a bad chunk_size for the large file {f.PathInRepo} of repo {repo}: run the upload again.");
        // Part URLs are the header's numbered keys ("1", "2", ... or "00001", ...), in part order.
        var parts = header.Where(kv => kv.Key.Length > 0 && kv.Key.All(char.IsAsciiDigit)).OrderBy(kv => int.Parse(kv.Key, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        if (parts.Count != (int)((f.Size + chunkSize - 1) / chunkSize))
            throw new OspreyException($"The hub sent {parts.Count} part URLs for the large file {f.PathInRepo} of repo {repo}, which needs {(f.Size + chunkSize - 1) / chunkSize} parts of {chunkSize} bytes: run the upload again.");
        var etags = new JsonArray();
        for (var i = 0; i < parts.Count; i++)
        {
            var offset = i * chunkSize;
            var etag = await PutAsync(repo, f, new Uri(parts[i].Value!.GetValue<string>()), null, offset, Math.Min(chunkSize, f.Size - offset), progress, cancel).ConfigureAwait(false)
                ?? throw new OspreyException($"The storage sent no ETag for part {i + 1} of the large file {f.PathInRepo} of repo {repo}: run the upload again.");
            etags.Add(new JsonObject { ["partNumber"] = i + 1, ["etag"] = etag });
        }
        var completion = new Uri(Str(upload, "href", repo));
        await Retry($"the last part of {f.PathInRepo} of repo {repo}", async ct =>
        {
            using var resp = await PostJsonAsync(completion, new JsonObject { ["oid"] = f.Sha256, ["parts"] = etags.DeepClone() }, ct).ConfigureAwait(false);
            await ThrowForStatusAsync(resp, repo, f.PathInRepo, "upload", ct).ConfigureAwait(false);
            return true;
        }, cancel).ConfigureAwait(false);
    }

    private async Task VerifyAsync(string repo, LocalFile f, JsonObject verify, CancellationToken cancel)
    {
        var url = new Uri(Str(verify, "href", repo));
        await Retry($"the check of {f.PathInRepo} of repo {repo}", async ct =>
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(new JsonObject { ["oid"] = f.Sha256, ["size"] = f.Size }.ToJsonString(), Encoding.UTF8, "application/vnd.git-lfs+json") };
            if (verify["header"] is JsonObject header)
                foreach (var (name, value) in header)
                    if (value is JsonValue hv && hv.TryGetValue<string>(out var text)) req.Headers.TryAddWithoutValidation(name, text);
            Authorize(req, url, Endpoint, _options.Token, cookie: false);
            using var resp = await SendAsync(_http, req, ct).ConfigureAwait(false);
            await ThrowForStatusAsync(resp, repo, f.PathInRepo, "verify", ct).ConfigureAwait(false);
            return true;
        }, cancel).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- commit

    private async Task<string> CommitAsync(string repo, string revision, string message, List<LocalFile> regular, List<LocalFile> lfs, CancellationToken cancel)
    {
        // Regular files are small (the hub sends anything large or binary through LFS), so the NDJSON body is built in memory.
        var ndjson = new StringBuilder();
        void Line(string key, JsonObject value) => ndjson.Append(new JsonObject { ["key"] = key, ["value"] = value }.ToJsonString()).Append('\n');
        Line("header", new JsonObject { ["summary"] = message, ["description"] = "" });
        foreach (var f in regular)
            Line("file", new JsonObject { ["content"] = Convert.ToBase64String(await File.ReadAllBytesAsync(f.FullPath, cancel).ConfigureAwait(false)), ["path"] = f.PathInRepo, ["encoding"] = "base64" });
        foreach (var f in lfs)
            Line("lfsFile", new JsonObject { ["path"] = f.PathInRepo, ["algo"] = "sha256", ["oid"] = f.Sha256, ["size"] = f.Size });
        var body = ndjson.ToString();
        var url = new Uri($"{Endpoint}/api/models/{repo}/commit/{Uri.EscapeDataString(revision)}");
        var json = await Retry($"the commit to repo {repo}", async ct =>
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/x-ndjson") };
            Authorize(req, url, Endpoint, _options.Token, cookie: false);
            using var resp = await SendAsync(_http, req, ct).ConfigureAwait(false);
            await ThrowForStatusAsync(resp, repo, null, "commit", ct).ConfigureAwait(false);
            return await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        }, cancel).ConfigureAwait(false);
        return ParseJson(json, repo, "commit")?["commitOid"]?.GetValue<string>() ?? "";
    }

    // ---------------------------------------------------------------- plumbing

    private async Task<HttpResponseMessage> PostJsonAsync(Uri url, JsonObject body, CancellationToken ct)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        Authorize(req, url, Endpoint, _options.Token, cookie: false);
        return await SendAsync(_http, req, ct).ConfigureAwait(false);
    }

    private async Task ThrowForStatusAsync(HttpResponseMessage resp, string repo, string? file, string step, CancellationToken ct)
    {
        var status = (int)resp.StatusCode;
        if (status is >= 200 and < 300) return;
        var what = file is null ? $"repo {repo}" : $"file {file} of repo {repo}";
        if (status is >= 500 or 429 or 408) throw new RetryableStatus($"{status} {resp.ReasonPhrase} for the {step} of {what}");
        var body = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        var said = ServerMessage(body);
        var org = repo.Split('/')[0];
        throw status switch
        {
            401 => new OspreyException($"Hugging Face refused the token for the {step} of {what} (401 from {Endpoint}{said}): set HF_TOKEN or pass --hub_token with a valid token that has write access."),
            403 => new OspreyException($"The token may not write to {org} (403 on the {step} of {what} from {Endpoint}{said}): use a write token of an account that can write to {org}, or choose --hub_model_id under your own name."),
            404 => new OspreyException($"Repo {repo} or its namespace {org} was not found on {Endpoint} (404 on the {step}{said}): check --hub_model_id and that the organization exists and the token's account belongs to it."),
            _ => new OspreyException($"Hugging Face answered {status} {resp.ReasonPhrase} on the {step} of {what}{said}: check --hub_model_id and HF_ENDPOINT ({Endpoint})."),
        };
    }

    private static string ServerMessage(string body)
    {
        try
        {
            if (JsonNode.Parse(body) is JsonObject o && o["error"] is JsonValue e && e.TryGetValue<string>(out var text) && text.Length > 0)
                return ": " + (text.Length > 200 ? text[..200] : text);
        }
        catch (JsonException)
        {
        }
        return "";
    }

    private JsonNode? ParseJson(string json, string repo, string step)
    {
        try
        {
            return JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new OspreyException($"The {step} answer of {Endpoint} for repo {repo} is not JSON: check HF_ENDPOINT points at a Hugging Face hub.", e);
        }
    }

    private string Str(JsonObject o, string name, string repo) =>
        o[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new OspreyException($"The LFS answer of {Endpoint} for repo {repo} has no {name}: check HF_ENDPOINT points at a Hugging Face hub.");

    private Task<T> Retry<T>(string what, Func<CancellationToken, Task<T>> attempt, CancellationToken ct) =>
        RetryAsync(what, Endpoint, "HF_ENDPOINT", _options.MaxRetries, _options.InitialBackoff, _options.MaxBackoff, attempt, ct);
}
