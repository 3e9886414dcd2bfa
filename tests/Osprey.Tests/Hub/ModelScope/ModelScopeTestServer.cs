using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Osprey.Hub.Download;

namespace Osprey.Tests.Hub.ModelScope;

/// <summary>A request the test ModelScope server saw (path without query, decoded query, lower-case headers).</summary>
internal sealed record MsRequest(string Method, string Path, IReadOnlyDictionary<string, string> Query, IReadOnlyDictionary<string, string> Headers)
{
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;

    public string? Q(string name) => Query.TryGetValue(name, out var v) ? v : null;

    public bool IsFile => Path.EndsWith("/repo", StringComparison.Ordinal) || Path.StartsWith("/storage/", StringComparison.Ordinal);
}

/// <summary>What the server does with one request instead of answering normally.</summary>
internal abstract record MsFault
{
    public sealed record Status(int Code) : MsFault;
    public sealed record CutAfter(int Bytes) : MsFault;
    public sealed record Delay(TimeSpan Time) : MsFault;
    public sealed record Corrupt : MsFault;
}

/// <summary>A repository of the test server: files per revision (branch or tag).</summary>
internal sealed class MsRepo(string id, HubRepoType type)
{
    public string Id => id;
    public HubRepoType Type => type;
    public Dictionary<string, Dictionary<string, byte[]>> Revisions { get; } = new(StringComparer.Ordinal);

    public MsRepo With(string revision, params (string Path, byte[] Content)[] files)
    {
        Revisions[revision] = files.ToDictionary(f => f.Path, f => f.Content, StringComparer.Ordinal);
        return this;
    }

    public byte[] File(string path, string revision = "master") => Revisions[revision][path];

    public static string Sha(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    public static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }
}

/// <summary>
/// A small HTTP/1.1 ModelScope hub on 127.0.0.1 (one request per connection): the model file list
/// (<c>/api/v1/models/{id}/repo/files</c>), the paged dataset tree (<c>/api/v1/datasets/{id}/repo/tree</c>), the
/// file API (<c>/api/v1/{models|datasets}/{id}/repo?Revision=&amp;FilePath=</c>, optionally redirecting to
/// <c>/storage/...</c>), Range requests, a request log and fault injection.
/// </summary>
internal sealed class ModelScopeTestServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly List<MsRepo> _repos = [];

    public ModelScopeTestServer()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _loop = Task.Run(AcceptLoop);
    }

    public string Url { get; }

    public ConcurrentQueue<MsRequest> Requests { get; } = new();

    /// <summary>Called for every request; a non-null fault replaces the normal answer.</summary>
    public Func<MsRequest, MsFault?>? OnRequest { get; set; }

    /// <summary>File requests answer 302 to <c>/storage/...</c> on this server.</summary>
    public bool RedirectFiles { get; set; }

    /// <summary>Only requests with <c>Authorization: Bearer</c> this token are served; others get 401.</summary>
    public string? RequiredToken { get; set; }

    public MsRepo Add(MsRepo repo)
    {
        lock (_repos) _repos.Add(repo);
        return repo;
    }

    public int FileGets => Requests.Count(r => r.IsFile);

    private Task AcceptLoop() => TestHttp.AcceptLoop(_listener, _stop.Token, Serve);

    private static Dictionary<string, string> ParseQuery(string query)
    {
        var q = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=');
            var k = eq < 0 ? pair : pair[..eq];
            var v = eq < 0 ? "" : pair[(eq + 1)..];
            q[Uri.UnescapeDataString(k.Replace('+', ' '))] = Uri.UnescapeDataString(v.Replace('+', ' '));
        }
        return q;
    }

    private async Task Serve(NetworkStream stream)
    {
        if (await TestHttp.ReadHead(stream) is not { } head) return;
        var (method, target, headers) = head;
        var qm = target.IndexOf('?');
        var req = new MsRequest(method, qm < 0 ? target : target[..qm], ParseQuery(qm < 0 ? "" : target[(qm + 1)..]), headers);
        Requests.Enqueue(req);
        var fault = OnRequest?.Invoke(req);
        if (fault is MsFault.Delay d)
        {
            await Task.Delay(d.Time);
            fault = null;
        }
        if (fault is MsFault.Status s)
        {
            await Send(stream, s.Code, "application/json", Json(s.Code, "injected"));
            return;
        }
        if (RequiredToken is { } token && req.Header("Authorization") != "Bearer " + token)
        {
            await Send(stream, 401, "application/json", Json(401, "not logged in"));
            return;
        }
        await Route(stream, req, fault);
    }

    private static byte[] Json(int code, string message) =>
        Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { Code = code, Message = message, Success = false }));

    private MsRepo? Find(string kind, string owner, string name)
    {
        lock (_repos)
            return _repos.FirstOrDefault(r => r.Id == owner + "/" + name && (r.Type == HubRepoType.Dataset) == (kind == "datasets"));
    }

    private async Task Route(NetworkStream stream, MsRequest req, MsFault? fault)
    {
        var seg = req.Path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (seg is ["storage", var kind2, var owner2, var name2, var rev2, .. var rest])
        {
            var repo2 = Find(kind2, owner2, name2);
            var path2 = Uri.UnescapeDataString(string.Join('/', rest));
            if (repo2 is null || !repo2.Revisions.TryGetValue(rev2, out var files2) || !files2.TryGetValue(path2, out var c2))
            {
                await Send(stream, 404, "text/plain", "no such object"u8.ToArray());
                return;
            }
            await SendFile(stream, req, c2, fault);
            return;
        }
        // /api/v1/{kind}/{owner}/{name}/repo[/files|/tree]
        if (seg.Length < 6 || seg[0] != "api" || seg[1] != "v1" || seg[5] != "repo")
        {
            await Send(stream, 404, "application/json", Json(404, "no route"));
            return;
        }
        var repo = Find(seg[2], seg[3], seg[4]);
        if (repo is null)
        {
            await Send(stream, 404, "application/json", Json(404, "repo not found"));
            return;
        }
        var revision = req.Q("Revision") ?? "master";
        if (!repo.Revisions.TryGetValue(revision, out var files))
        {
            await Send(stream, 404, "application/json", Json(404, $"revision {revision} not found"));
            return;
        }
        if (seg.Length == 7 && (seg[6] == "files" || seg[6] == "tree"))
        {
            var entries = new List<object>();
            foreach (var dir in files.Keys.Where(p => p.Contains('/')).Select(p => p[..p.LastIndexOf('/')]).Distinct())
                entries.Add(new { Name = dir.Split('/')[^1], Path = dir, Type = "tree", Size = 0, Revision = "c0ffee" + revision });
            foreach (var (p, c) in files)
                entries.Add(new { Name = p.Split('/')[^1], Path = p, Type = "blob", Size = (long)c.Length, Sha256 = MsRepo.Sha(c), Revision = "c0ffee" + revision });
            if (seg[6] == "tree")
            {
                var size = int.Parse(req.Q("PageSize") ?? "100");
                var page = int.Parse(req.Q("PageNumber") ?? "1");
                entries = entries.Skip((page - 1) * size).Take(size).ToList();
            }
            await Send(stream, 200, "application/json", JsonSerializer.SerializeToUtf8Bytes(new { Code = 200, Data = new { Files = entries }, Success = true }));
            return;
        }
        if (seg.Length == 6)
        {
            var path = req.Q("FilePath") ?? "";
            if (!files.TryGetValue(path, out var content))
            {
                await Send(stream, 404, "application/json", Json(404, "file not found"));
                return;
            }
            if (RedirectFiles)
            {
                var loc = $"/storage/{seg[2]}/{seg[3]}/{seg[4]}/{revision}/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}";
                await Send(stream, 302, "text/plain", [], $"Location: {loc}\r\n");
                return;
            }
            await SendFile(stream, req, content, fault);
            return;
        }
        await Send(stream, 404, "application/json", Json(404, "no route"));
    }

    private static async Task SendFile(NetworkStream stream, MsRequest req, byte[] content, MsFault? fault)
    {
        if (fault is MsFault.Corrupt)
        {
            content = (byte[])content.Clone();
            content[0] ^= 0xFF;
        }
        long from = 0;
        if (req.Header("Range") is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
            from = long.Parse(range[6..].Split('-')[0]);
        if (from >= content.Length && content.Length > 0)
        {
            await Send(stream, 416, "text/plain", []);
            return;
        }
        var body = content.AsSpan((int)from).ToArray();
        var status = from > 0 ? 206 : 200;
        var extra = from > 0 ? $"Content-Range: bytes {from}-{content.Length - 1}/{content.Length}\r\n" : "";
        if (fault is MsFault.CutAfter cut && cut.Bytes < body.Length)
        {
            // Promise the whole body, send part of it, then drop the connection.
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status} X\r\nContent-Type: application/octet-stream\r\nContent-Length: {body.Length}\r\n{extra}Connection: close\r\n\r\n"));
            await stream.WriteAsync(body.AsMemory(0, cut.Bytes));
            await stream.FlushAsync();
            stream.Socket.Close(0);
            return;
        }
        await Send(stream, status, "application/octet-stream", body, extra);
    }

    private static async Task Send(NetworkStream stream, int status, string contentType, byte[] body, string extraHeaders = "")
    {
        var head = $"HTTP/1.1 {status} X\r\nContent-Type: {contentType}\r\nContent-Length: {body.Length}\r\n{extraHeaders}Connection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(body);
        await stream.FlushAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _loop;
        }
        catch (Exception)
        {
            // stopped
        }
        _stop.Dispose();
    }
}
