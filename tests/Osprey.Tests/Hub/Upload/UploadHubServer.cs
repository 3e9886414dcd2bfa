using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Osprey.Tests.Hub.Upload;

/// <summary>A request the upload server saw.</summary>
internal sealed record UploadRequest(string Method, string Path, string? Authorization, string? Cookie);

/// <summary>One repository of the upload server: its visibility and its files as committed.</summary>
internal sealed class StoredRepo(bool isPrivate)
{
    public bool Private { get; } = isPrivate;
    public ConcurrentDictionary<string, byte[]> Files { get; } = new(StringComparer.Ordinal);
    public ConcurrentDictionary<string, bool> ViaLfs { get; } = new(StringComparer.Ordinal);
    public int Commits;
    public string? LastMessage { get; set; }
}

/// <summary>
/// A Kestrel server on 127.0.0.1 that speaks the upload side of both hubs, written from their public API descriptions
/// (huggingface_hub's HfApi.create_commit and lfs.py; modelscope's HubApi.upload_folder) and storing what it receives:
/// Hugging Face's repo creation, preupload (LFS for *.safetensors, *.bin, files over <see cref="LfsAbove"/> bytes and
/// binary samples), the Git LFS batch API (basic PUT, or multipart above <see cref="MultipartAbove"/> bytes in
/// <see cref="ChunkSize"/> parts, then verify) and the NDJSON commit; and ModelScope's repo lookup and creation, file list,
/// LFS batch, blob PUT and JSON commit. Large-file bodies are checked against their sha256 before they are kept.
/// </summary>
internal sealed class UploadHubServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, byte[]> _lfs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte[]> _parts = new(StringComparer.Ordinal);

    private UploadHubServer(WebApplication app) => _app = app;

    public static async Task<UploadHubServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        var app = builder.Build();
        var server = new UploadHubServer(app);
        app.Run(server.Handle);
        await app.StartAsync();
        server.Url = app.Urls.Single();
        return server;
    }

    public string Url { get; private set; } = "";
    public ConcurrentDictionary<string, StoredRepo> Repos { get; } = new(StringComparer.Ordinal);
    public ConcurrentQueue<UploadRequest> Requests { get; } = new();

    /// <summary>Requests must carry this token (bearer, or ModelScope's m_session_id cookie); others get 401.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Namespaces the token may not create repos in (403).</summary>
    public HashSet<string> ForbiddenOrgs { get; } = [];

    /// <summary>How many of the next LFS PUTs answer 503 before any succeeds.</summary>
    public int FailingPuts;

    public long LfsAbove { get; set; } = 10_000;
    public long MultipartAbove { get; set; } = 100_000;
    public long ChunkSize { get; set; } = 40_000;

    public int Count(string method, string pathContains) => Requests.Count(r => r.Method == method && r.Path.Contains(pathContains, StringComparison.Ordinal));

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private static string GitSha1(byte[] data) => Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {data.Length}\0"), .. data]));

    private async Task Handle(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "/";
        var method = ctx.Request.Method;
        var auth = ctx.Request.Headers.Authorization.ToString();
        var cookie = ctx.Request.Headers.Cookie.ToString();
        Requests.Enqueue(new UploadRequest(method, path, auth.Length > 0 ? auth : null, cookie.Length > 0 ? cookie : null));
        using var buffer = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(buffer);
        var body = buffer.ToArray();
        var storage = path.StartsWith("/storage/", StringComparison.Ordinal);
        if (RequiredToken is not null && !storage && auth != "Bearer " + RequiredToken && !cookie.Contains("m_session_id=" + RequiredToken, StringComparison.Ordinal))
        {
            await Json(ctx, 401, new JsonObject { ["error"] = "Invalid credentials in Authorization header" });
            return;
        }
        var seg = path.Trim('/').Split('/');
        if (storage) await Storage(ctx, method, seg, body);
        else if (seg[0] == "api" && seg.Length > 1 && seg[1] == "v1") await ModelScope(ctx, method, seg, body);
        else await HuggingFace(ctx, method, seg, body);
    }

    // ---------------------------------------------------------------- Hugging Face

    private async Task HuggingFace(HttpContext ctx, string method, string[] seg, byte[] body)
    {
        if (method == "POST" && seg is ["api", "repos", "create"])
        {
            var req = JsonNode.Parse(body)!;
            var id = $"{req["organization"]}/{req["name"]}";
            if (ForbiddenOrgs.Contains(req["organization"]!.ToString())) { await Json(ctx, 403, new JsonObject { ["error"] = "You don't have the rights to create a model under this namespace" }); return; }
            if (!Repos.TryAdd(id, new StoredRepo(req["private"]?.GetValue<bool>() == true))) { await Json(ctx, 409, new JsonObject { ["error"] = "You already created this model repo" }); return; }
            await Json(ctx, 200, new JsonObject { ["url"] = $"{Url}/{id}" });
            return;
        }
        if (method == "POST" && seg is ["api", "models", var org, var name, "preupload", _])
        {
            if (!Repos.TryGetValue($"{org}/{name}", out var repo)) { await Json(ctx, 404, new JsonObject { ["error"] = "Repository not found" }); return; }
            var answer = new JsonArray();
            foreach (var f in JsonNode.Parse(body)!["files"]!.AsArray())
            {
                var p = f!["path"]!.GetValue<string>();
                var sample = Convert.FromBase64String(f["sample"]!.GetValue<string>());
                var lfs = p.EndsWith(".safetensors", StringComparison.Ordinal) || p.EndsWith(".bin", StringComparison.Ordinal) || f["size"]!.GetValue<long>() > LfsAbove || sample.Contains((byte)0);
                var entry = new JsonObject { ["path"] = p, ["uploadMode"] = lfs ? "lfs" : "regular", ["shouldIgnore"] = false };
                if (repo.Files.TryGetValue(p, out var have)) entry["oid"] = repo.ViaLfs.ContainsKey(p) ? Sha256(have) : GitSha1(have);
                answer.Add(entry);
            }
            await Json(ctx, 200, new JsonObject { ["files"] = answer, ["commitOid"] = "0" });
            return;
        }
        if (method == "POST" && seg.Length == 6 && seg[1].EndsWith(".git", StringComparison.Ordinal) && seg[2..] is ["info", "lfs", "objects", "batch"])
        {
            var objects = new JsonArray();
            foreach (var o in JsonNode.Parse(body)!["objects"]!.AsArray())
            {
                var oid = o!["oid"]!.GetValue<string>();
                var size = o["size"]!.GetValue<long>();
                var entry = new JsonObject { ["oid"] = oid, ["size"] = size };
                if (!_lfs.ContainsKey(oid))
                {
                    JsonObject upload;
                    if (size > MultipartAbove)
                    {
                        var header = new JsonObject { ["chunk_size"] = ChunkSize.ToString(System.Globalization.CultureInfo.InvariantCulture) };
                        for (var i = 1; (i - 1) * ChunkSize < size; i++) header[i.ToString("D5", System.Globalization.CultureInfo.InvariantCulture)] = $"{Url}/storage/part/{oid}/{i}";
                        upload = new JsonObject { ["href"] = $"{Url}/storage/complete/{oid}", ["header"] = header };
                    }
                    else
                    {
                        upload = new JsonObject { ["href"] = $"{Url}/storage/put/{oid}" };
                    }
                    entry["actions"] = new JsonObject { ["upload"] = upload, ["verify"] = new JsonObject { ["href"] = $"{Url}/{seg[0]}/{seg[1]}/info/lfs/objects/verify" } };
                }
                objects.Add(entry);
            }
            await Json(ctx, 200, new JsonObject { ["transfer"] = "basic", ["objects"] = objects });
            return;
        }
        if (method == "POST" && seg.Length == 6 && seg[2..] is ["info", "lfs", "objects", "verify"])
        {
            var v = JsonNode.Parse(body)!;
            var ok = _lfs.TryGetValue(v["oid"]!.GetValue<string>(), out var data) && data.Length == v["size"]!.GetValue<long>();
            await Json(ctx, ok ? 200 : 404, new JsonObject { ["message"] = ok ? "ok" : "object not found" });
            return;
        }
        if (method == "POST" && seg is ["api", "models", var o2, var n2, "commit", _])
        {
            if (!Repos.TryGetValue($"{o2}/{n2}", out var repo)) { await Json(ctx, 404, new JsonObject { ["error"] = "Repository not found" }); return; }
            if (ctx.Request.ContentType?.StartsWith("application/x-ndjson", StringComparison.Ordinal) != true) { await Json(ctx, 400, new JsonObject { ["error"] = "expected application/x-ndjson" }); return; }
            var lines = Encoding.UTF8.GetString(body).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
            if (lines.Count == 0 || lines[0]["key"]!.ToString() != "header" || string.IsNullOrEmpty(lines[0]["value"]!["summary"]?.ToString())) { await Json(ctx, 400, new JsonObject { ["error"] = "the first line must be the header with a summary" }); return; }
            foreach (var line in lines.Skip(1))
            {
                var v = line["value"]!;
                var p = v["path"]!.GetValue<string>();
                switch (line["key"]!.ToString())
                {
                    case "file":
                        if (v["encoding"]?.ToString() != "base64") { await Json(ctx, 400, new JsonObject { ["error"] = "encoding must be base64" }); return; }
                        repo.Files[p] = Convert.FromBase64String(v["content"]!.GetValue<string>());
                        repo.ViaLfs.TryRemove(p, out _);
                        break;
                    case "lfsFile":
                        if (v["algo"]?.ToString() != "sha256" || !_lfs.TryGetValue(v["oid"]!.GetValue<string>(), out var data) || data.Length != v["size"]!.GetValue<long>())
                        { await Json(ctx, 400, new JsonObject { ["error"] = $"LFS object of {p} was not uploaded" }); return; }
                        repo.Files[p] = data;
                        repo.ViaLfs[p] = true;
                        break;
                    default:
                        await Json(ctx, 400, new JsonObject { ["error"] = "unknown key" });
                        return;
                }
            }
            Interlocked.Increment(ref repo.Commits);
            repo.LastMessage = lines[0]["value"]!["summary"]!.ToString();
            await Json(ctx, 200, new JsonObject { ["commitOid"] = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20)), ["commitUrl"] = $"{Url}/{o2}/{n2}/commit/x" });
            return;
        }
        await Json(ctx, 404, new JsonObject { ["error"] = "no such route " + string.Join('/', seg) });
    }

    // ---------------------------------------------------------------- storage (both hubs' upload hrefs)

    private async Task Storage(HttpContext ctx, string method, string[] seg, byte[] body)
    {
        if (method == "PUT" && seg[1] is "put" or "part" && Interlocked.Decrement(ref FailingPuts) >= 0)
        {
            await Json(ctx, 503, new JsonObject { ["error"] = "try again" });
            return;
        }
        if (method == "PUT" && seg is ["storage", "put", var oid])
        {
            if (Sha256(body) != oid) { await Json(ctx, 400, new JsonObject { ["error"] = "sha256 mismatch" }); return; }
            _lfs[oid] = body;
            await Json(ctx, 200, new JsonObject { ["Code"] = 200, ["Message"] = "ok" });
            return;
        }
        if (method == "PUT" && seg is ["storage", "part", var poid, var number])
        {
            _parts[$"{poid}/{number}"] = body;
            ctx.Response.Headers.ETag = $"\"{Convert.ToHexStringLower(MD5.HashData(body))}\"";
            ctx.Response.StatusCode = 200;
            return;
        }
        if (method == "POST" && seg is ["storage", "complete", var coid])
        {
            var req = JsonNode.Parse(body)!;
            using var whole = new MemoryStream();
            var expected = 1;
            foreach (var part in req["parts"]!.AsArray())
            {
                var n = part!["partNumber"]!.GetValue<int>();
                if (n != expected++ || !_parts.TryGetValue($"{coid}/{n}", out var bytes) || part["etag"]!.ToString() != $"\"{Convert.ToHexStringLower(MD5.HashData(bytes))}\"")
                { await Json(ctx, 400, new JsonObject { ["error"] = $"part {n} missing or its etag is wrong" }); return; }
                whole.Write(bytes);
            }
            var data = whole.ToArray();
            if (req["oid"]!.ToString() != coid || Sha256(data) != coid) { await Json(ctx, 400, new JsonObject { ["error"] = "sha256 mismatch" }); return; }
            _lfs[coid] = data;
            await Json(ctx, 200, new JsonObject());
            return;
        }
        await Json(ctx, 404, new JsonObject { ["error"] = "no such storage route" });
    }

    // ---------------------------------------------------------------- ModelScope

    private async Task ModelScope(HttpContext ctx, string method, string[] seg, byte[] body)
    {
        if (method == "GET" && seg is ["api", "v1", "models", var org, var name])
        {
            if (Repos.ContainsKey($"{org}/{name}")) await Json(ctx, 200, new JsonObject { ["Code"] = 200, ["Data"] = new JsonObject { ["Name"] = name } });
            else await Json(ctx, 404, new JsonObject { ["Code"] = 10010205001, ["Message"] = "model not found" });
            return;
        }
        if (method == "POST" && seg is ["api", "v1", "models"])
        {
            var req = JsonNode.Parse(body)!;
            var owner = req["Path"]!.ToString();
            if (ForbiddenOrgs.Contains(owner)) { await Json(ctx, 403, new JsonObject { ["Code"] = 403, ["Message"] = "no permission on the namespace" }); return; }
            var visibility = req["Visibility"]!.GetValue<int>();
            if (visibility is not (1 or 3 or 5)) { await Json(ctx, 400, new JsonObject { ["Code"] = 400, ["Message"] = "bad Visibility" }); return; }
            Repos.TryAdd($"{owner}/{req["Name"]}", new StoredRepo(visibility == 1));
            await Json(ctx, 200, new JsonObject { ["Code"] = 200, ["Success"] = true });
            return;
        }
        if (method == "GET" && seg is ["api", "v1", "models", var lo, var ln, "repo", "files"])
        {
            var repo = Repos[$"{lo}/{ln}"];
            var files = new JsonArray();
            foreach (var (p, data) in repo.Files)
                files.Add(new JsonObject { ["Path"] = p, ["Name"] = Path.GetFileName(p), ["Size"] = data.Length, ["Sha256"] = Sha256(data), ["Type"] = "blob", ["Revision"] = "c0ffee" });
            await Json(ctx, 200, new JsonObject { ["Code"] = 200, ["Data"] = new JsonObject { ["Files"] = files } });
            return;
        }
        if (method == "POST" && seg is ["api", "v1", "repos", "models", _, _, "info", "lfs", "objects", "batch"])
        {
            var objects = new JsonArray();
            foreach (var o in JsonNode.Parse(body)!["objects"]!.AsArray())
            {
                var oid = o!["oid"]!.GetValue<string>();
                // As modelscope's client reads it: only the objects still to send are listed.
                if (!_lfs.ContainsKey(oid)) objects.Add(new JsonObject { ["oid"] = oid, ["size"] = o["size"]!.GetValue<long>(), ["actions"] = new JsonObject { ["upload"] = new JsonObject { ["href"] = $"{Url}/storage/put/{oid}" } } });
            }
            await Json(ctx, 200, new JsonObject { ["Code"] = 200, ["Data"] = new JsonObject { ["objects"] = objects } });
            return;
        }
        if (method == "POST" && seg is ["api", "v1", "repos", "models", var co, var cn, "commit", _])
        {
            var repo = Repos[$"{co}/{cn}"];
            var req = JsonNode.Parse(body)!;
            if (string.IsNullOrEmpty(req["commit_message"]?.ToString())) { await Json(ctx, 400, new JsonObject { ["Code"] = 400, ["Success"] = false, ["Message"] = "commit_message is required" }); return; }
            foreach (var a in req["actions"]!.AsArray())
            {
                var p = a!["path"]!.GetValue<string>();
                if (a["type"]!.ToString() == "lfs")
                {
                    if (!_lfs.TryGetValue(a["sha256"]!.GetValue<string>(), out var data)) { await Json(ctx, 200, new JsonObject { ["Code"] = 200, ["Success"] = false, ["Message"] = $"blob of {p} missing" }); return; }
                    repo.Files[p] = data;
                    repo.ViaLfs[p] = true;
                }
                else
                {
                    repo.Files[p] = Convert.FromBase64String(a["content"]!.GetValue<string>());
                    repo.ViaLfs.TryRemove(p, out _);
                }
            }
            Interlocked.Increment(ref repo.Commits);
            repo.LastMessage = req["commit_message"]!.ToString();
            await Json(ctx, 200, new JsonObject { ["Code"] = 200, ["Success"] = true, ["Message"] = "ok" });
            return;
        }
        await Json(ctx, 404, new JsonObject { ["Code"] = 404, ["Message"] = "no such route" });
    }

    private static async Task Json(HttpContext ctx, int status, JsonObject body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(body.ToJsonString());
    }
}
