using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Hub.Download;
using Osprey.Hub.ModelScope;
using static Osprey.Hub.Upload.UploadTransport;

namespace Osprey.Hub.Upload;

/// <summary>
/// Uploads a folder to a ModelScope model repository as one commit, through the HTTP API the modelscope library's
/// <c>HubApi.upload_folder</c> uses: <c>GET /api/v1/models/{owner}/{name}</c> (does it exist?), <c>POST /api/v1/models</c>
/// (create; Visibility 1 private, 5 public), the LFS batch <c>POST /api/v1/repos/models/{repo}/info/lfs/objects/batch</c>
/// (objects the hub lacks come back with an upload href, which takes a streamed PUT) and <c>POST
/// /api/v1/repos/models/{repo}/commit/{revision}</c> with JSON actions (regular files base64 inline, LFS files by sha256 and
/// size). Which files go through LFS follows the library's rule: larger than 1 MiB, or a weight/archive suffix. Files the
/// repository already holds with the same sha256 (its file list) are left out; when none is left no commit is made.
/// </summary>
public sealed class ModelScopeUploader : IDisposable
{
    /// <summary>Files above this size always go through LFS (modelscope's UPLOAD_SIZE_THRESHOLD_TO_ENFORCE_LFS).</summary>
    public const long LfsThreshold = 1L << 20;

    // Suffixes that go through LFS whatever their size: weights, archives and binary data.
    private static readonly HashSet<string> LfsSuffixes = new(StringComparer.OrdinalIgnoreCase)
    {
        ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".gguf", ".msgpack", ".model", ".npy", ".npz",
        ".pkl", ".pickle", ".tflite", ".ot", ".arrow", ".parquet", ".zip", ".tar", ".gz", ".7z", ".bz2", ".xz", ".zst",
        ".jpg", ".jpeg", ".png", ".gif", ".webp", ".wav", ".mp3", ".mp4", ".pdf",
    };

    private readonly ModelScopeClientOptions _options;
    private readonly HttpMessageHandler? _handler;
    private readonly HttpClient _http;

    /// <summary>An uploader with <paramref name="options"/> (endpoint, token, retries); <paramref name="handler"/> is for tests.</summary>
    public ModelScopeUploader(ModelScopeClientOptions options, HttpMessageHandler? handler = null)
    {
        _options = options;
        _handler = handler;
        _http = new HttpClient(handler ?? new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = options.RequestTimeout, UseCookies = false },
            disposeHandler: handler is null) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("osprey/0.1");
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();

    private string Endpoint => _options.Endpoint.TrimEnd('/');

    /// <summary>True when ModelScope stores <paramref name="file"/> through LFS.</summary>
    public static bool IsLfs(LocalFile file) => file.Size > LfsThreshold || LfsSuffixes.Contains(Path.GetExtension(file.PathInRepo));

    /// <summary>Uploads <see cref="HubUploadRequest.Folder"/> into the model repository <see cref="HubUploadRequest.RepoId"/>.</summary>
    /// <exception cref="OspreyException">The token is missing or refused, the repository cannot be created, or the hub kept failing.</exception>
    public async Task<HubUploadResult> UploadFolderAsync(HubUploadRequest request, CancellationToken cancel = default)
    {
        var repo = request.RepoId;
        var revision = ModelScopeClient.NormalizeRevision(request.Revision);
        var log = request.Log;
        if (_options.Token is null)
            throw new OspreyException($"Uploading to ModelScope repo {repo} needs an access token: set MODELSCOPE_API_TOKEN or pass --hub_token (the SDK token from your ModelScope account settings).");
        var files = LocalFile.Scan(request.Folder, request.Exclude, cancel);
        log?.WriteLine($"Uploading {files.Count} files ({Size(files.Sum(f => f.Size))}) from {request.Folder} to ModelScope repo {repo} ({Endpoint}).");

        var created = !await ExistsAsync(repo, cancel).ConfigureAwait(false);
        var remote = new Dictionary<string, ModelScopeFile>(StringComparer.Ordinal);
        if (created) await CreateAsync(repo, request.Private, cancel).ConfigureAwait(false);
        else
        {
            using var lister = new ModelScopeClient(_options, _handler is null ? null : new NonDisposingHandler(_handler));
            foreach (var f in await lister.ListFilesAsync(repo, HubRepoType.Model, revision, cancel).ConfigureAwait(false)) remote[f.Path] = f;
        }

        var changed = files.Where(f => !(remote.TryGetValue(f.PathInRepo, out var r) && r.Size == f.Size && string.Equals(r.Sha256, f.Sha256, StringComparison.OrdinalIgnoreCase))).ToList();
        var unchanged = files.Count - changed.Count;
        if (changed.Count == 0)
        {
            log?.WriteLine($"Nothing to upload: all {files.Count} files are already in {repo} with the same content; no commit made.");
            return new HubUploadResult(RepoUrl(repo), created, 0, 0, 0, unchanged, null);
        }
        var lfs = changed.Where(IsLfs).ToList();
        var regular = changed.Where(f => !IsLfs(f)).ToList();
        var (sent, reused) = lfs.Count > 0 ? await UploadBlobsAsync(repo, lfs, log, cancel).ConfigureAwait(false) : (0, 0);
        await CommitAsync(repo, revision, request.CommitMessage, changed, remote, cancel).ConfigureAwait(false);
        log?.WriteLine($"Committed {changed.Count} files to {RepoUrl(repo)} ({sent} large files sent, {reused} already on the hub, {regular.Count} small files inline, {unchanged} unchanged).");
        return new HubUploadResult(RepoUrl(repo), created, sent, reused, regular.Count, unchanged, revision);
    }

    private string RepoUrl(string repo) => $"{Endpoint}/models/{repo}";

    private async Task<bool> ExistsAsync(string repo, CancellationToken cancel) =>
        await Retry($"the lookup of repo {repo}", async ct =>
        {
            var url = new Uri($"{Endpoint}/api/v1/models/{repo}");
            using var req = new HttpRequestMessage(HttpMethod.Get, url);
            Authorize(req, url, Endpoint, _options.Token, cookie: true);
            using var resp = await SendAsync(_http, req, ct).ConfigureAwait(false);
            if (resp.StatusCode == HttpStatusCode.NotFound) return false;
            var body = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            ThrowForStatus(resp, body, repo, null, "lookup");
            return Code(body) is null or 200;
        }, cancel).ConfigureAwait(false);

    private async Task CreateAsync(string repo, bool isPrivate, CancellationToken cancel)
    {
        var parts = repo.Split('/');
        var body = new JsonObject
        {
            ["Path"] = parts[0],
            ["Name"] = parts[1],
            ["ChineseName"] = null,
            ["Visibility"] = isPrivate ? 1 : 5,
            ["License"] = "apache-2.0",
            ["OriginalModelId"] = "",
            ["TrainId"] = "",
        };
        await Retry($"the creation of repo {repo}", async ct =>
        {
            using var resp = await PostJsonAsync(new Uri($"{Endpoint}/api/v1/models"), body, ct).ConfigureAwait(false);
            var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            ThrowForStatus(resp, text, repo, null, "create");
            ThrowForCode(text, repo, null, "create");
            return true;
        }, cancel).ConfigureAwait(false);
    }

    private async Task<(int Sent, int Reused)> UploadBlobsAsync(string repo, List<LocalFile> files, TextWriter? log, CancellationToken cancel)
    {
        int sent = 0, reused = 0;
        var url = new Uri($"{Endpoint}/api/v1/repos/models/{repo}/info/lfs/objects/batch");
        foreach (var f in files)
        {
            var body = new JsonObject { ["operation"] = "upload", ["objects"] = new JsonArray(new JsonObject { ["oid"] = f.Sha256, ["size"] = f.Size }) };
            var json = await Retry($"the LFS batch for {f.PathInRepo} of repo {repo}", async ct =>
            {
                using var resp = await PostJsonAsync(url, body, ct).ConfigureAwait(false);
                var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                ThrowForStatus(resp, text, repo, f.PathInRepo, "LFS batch");
                ThrowForCode(text, repo, f.PathInRepo, "LFS batch");
                return text;
            }, cancel).ConfigureAwait(false);
            var href = (JsonNode.Parse(json)?["Data"]?["objects"] as JsonArray)?.OfType<JsonObject>()
                .Where(o => string.Equals(o["oid"]?.GetValue<string>(), f.Sha256, StringComparison.OrdinalIgnoreCase))
                .Select(o => o["actions"]?["upload"]?["href"]?.GetValue<string>()).FirstOrDefault(h => h is not null);
            if (href is null)
            {
                reused++; // the hub already holds these bytes
                log?.WriteLine($"  {f.PathInRepo}: already on the hub, not sent again");
                continue;
            }
            log?.WriteLine($"  {f.PathInRepo}: sending {Size(f.Size)}");
            var progress = UploadTransport.Progress(log, f.PathInRepo, f.Size);
            var target = new Uri(href);
            await Retry($"{f.PathInRepo} of repo {repo}", async ct =>
            {
                using var req = new HttpRequestMessage(HttpMethod.Put, target) { Content = new FileSliceContent(f.FullPath, 0, f.Size, progress) };
                // The modelscope library sends its session cookie with the PUT; the storage URL is its own host.
                req.Headers.TryAddWithoutValidation("Cookie", "m_session_id=" + _options.Token);
                using var resp = await SendAsync(_http, req, ct).ConfigureAwait(false);
                var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                ThrowForStatus(resp, text, repo, f.PathInRepo, "upload");
                ThrowForCode(text, repo, f.PathInRepo, "upload");
                return true;
            }, cancel).ConfigureAwait(false);
            sent++;
        }
        return (sent, reused);
    }

    private async Task CommitAsync(string repo, string revision, string message, List<LocalFile> files, Dictionary<string, ModelScopeFile> remote, CancellationToken cancel)
    {
        var actions = new JsonArray();
        foreach (var f in files)
        {
            var lfs = IsLfs(f);
            actions.Add(new JsonObject
            {
                ["action"] = remote.ContainsKey(f.PathInRepo) ? "update" : "create",
                ["path"] = f.PathInRepo,
                ["type"] = lfs ? "lfs" : "normal",
                ["size"] = f.Size,
                ["sha256"] = lfs ? f.Sha256 : "",
                // Regular files are at most 1 MiB here, so they are read whole.
                ["content"] = lfs ? "" : Convert.ToBase64String(await File.ReadAllBytesAsync(f.FullPath, cancel).ConfigureAwait(false)),
                ["encoding"] = lfs ? "" : "base64",
            });
        }
        var body = new JsonObject { ["commit_message"] = message, ["actions"] = actions };
        var url = new Uri($"{Endpoint}/api/v1/repos/models/{repo}/commit/{Uri.EscapeDataString(revision)}");
        await Retry($"the commit to repo {repo}", async ct =>
        {
            using var resp = await PostJsonAsync(url, body, ct).ConfigureAwait(false);
            var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            ThrowForStatus(resp, text, repo, null, "commit");
            ThrowForCode(text, repo, null, "commit");
            if (JsonNode.Parse(text) is JsonObject o && o["Success"] is JsonValue s && s.TryGetValue<bool>(out var ok) && !ok)
                throw new OspreyException($"ModelScope refused the commit to repo {repo}{Message(text)}: check the files and that the token can write to the repo.");
            return true;
        }, cancel).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> PostJsonAsync(Uri url, JsonObject body, CancellationToken ct)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        Authorize(req, url, Endpoint, _options.Token, cookie: true);
        return await SendAsync(_http, req, ct).ConfigureAwait(false);
    }

    private void ThrowForStatus(HttpResponseMessage resp, string body, string repo, string? file, string step)
    {
        var status = (int)resp.StatusCode;
        if (status is >= 200 and < 300) return;
        if (status is >= 500 or 429 or 408) throw new RetryableStatus($"{status} {resp.ReasonPhrase} for the {step} of {(file is null ? "repo " + repo : $"file {file} of repo {repo}")}");
        throw Refused(status, body, repo, file, step);
    }

    private void ThrowForCode(string body, string repo, string? file, string step)
    {
        if (Code(body) is not { } code || code == 200) return;
        if (code is >= 500 and < 600) throw new RetryableStatus($"code {code} for the {step} of repo {repo}");
        throw Refused(code, body, repo, file, step);
    }

    private OspreyException Refused(int status, string body, string repo, string? file, string step)
    {
        var what = file is null ? $"repo {repo}" : $"file {file} of repo {repo}";
        var org = repo.Split('/')[0];
        return status switch
        {
            401 => new($"ModelScope refused the token for the {step} of {what} (401 from {Endpoint}{Message(body)}): set MODELSCOPE_API_TOKEN or pass --hub_token with a valid SDK token."),
            403 => new($"The token may not write to {org} (403 on the {step} of {what} from {Endpoint}{Message(body)}): use the token of an account that can write to {org}, or choose --hub_model_id under your own name."),
            404 => new($"Repo {repo} or its namespace {org} was not found on {Endpoint} (404 on the {step}{Message(body)}): check --hub_model_id and that the organization exists and the token's account belongs to it."),
            _ => new($"ModelScope answered {status} on the {step} of {what}{Message(body)}: check --hub_model_id and MODELSCOPE_DOMAIN ({Endpoint})."),
        };
    }

    private static int? Code(string body)
    {
        try
        {
            if (JsonNode.Parse(body) is JsonObject o && o["Code"] is JsonValue c)
            {
                if (c.TryGetValue<int>(out var n)) return n;
                if (c.TryGetValue<string>(out var s) && int.TryParse(s, out var m)) return m;
            }
        }
        catch (JsonException)
        {
        }
        return null;
    }

    private static string Message(string body)
    {
        try
        {
            if (JsonNode.Parse(body) is JsonObject o && o["Message"] is JsonValue m && m.TryGetValue<string>(out var text) && text.Length > 0)
                return ": " + (text.Length > 200 ? text[..200] : text);
        }
        catch (JsonException)
        {
        }
        return "";
    }

    private Task<T> Retry<T>(string what, Func<CancellationToken, Task<T>> attempt, CancellationToken ct) =>
        RetryAsync(what, Endpoint, "MODELSCOPE_DOMAIN", _options.MaxRetries, _options.InitialBackoff, _options.MaxBackoff, attempt, ct);

    /// <summary>Lends the test handler to the file lister without letting it dispose the handler.</summary>
    private sealed class NonDisposingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override void Dispose(bool disposing)
        {
        }
    }
}
