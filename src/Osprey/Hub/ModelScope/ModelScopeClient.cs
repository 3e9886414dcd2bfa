using System.Net;
using System.Text.Json;
using Osprey.Hub.Download;

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
public sealed partial class ModelScopeClient : IHubDownloader, IDisposable
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
}
