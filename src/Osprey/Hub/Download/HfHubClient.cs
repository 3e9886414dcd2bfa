using System.Net;
using System.Text.Json;

namespace Osprey.Hub.Download;

/// <summary>
/// A Hugging Face Hub download client: repository info through <c>/api/{models|datasets}/{repo}/revision/{rev}</c>,
/// files through <c>/{repo}/resolve/{commit}/{path}</c> (HEAD without following cross-host redirects for the
/// etag and commit, then GET following them), stored in the huggingface_hub cache layout
/// (<see cref="HfCacheLayout"/>) or a plain folder. Downloads stream to <c>.incomplete</c> files, resume
/// with HTTP ranges, retry transient failures with exponential backoff, are verified (sha256 for LFS
/// files, git sha1 for small ones) and renamed into place atomically under a per-blob lock file.
/// </summary>
public sealed partial class HfHubClient : IHubDownloader, IDisposable
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
}
