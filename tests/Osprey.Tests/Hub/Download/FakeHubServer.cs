using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Osprey.Hub.Download;

namespace Osprey.Tests.Hub.Download;

/// <summary>A request the fake hub saw.</summary>
internal sealed record HubRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers)
{
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;
}

/// <summary>What the fake hub does with one request instead of answering normally.</summary>
internal abstract record Fault
{
    public sealed record Status(int Code) : Fault;
    public sealed record CutAfter(int Bytes) : Fault;
    public sealed record Delay(TimeSpan Time) : Fault;
    public sealed record Corrupt : Fault;
}

/// <summary>One file of a fake repo; LFS files are served through a redirect to <c>/cdn/{sha256}</c>.</summary>
internal sealed record FakeFile(string Path, byte[] Content, bool Lfs)
{
    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Content));
    public string GitSha1 => HfHubClient.GitBlobSha1(Content);
    public byte[] Pointer => Encoding.ASCII.GetBytes($"version https://git-lfs.github.com/spec/v1\noid sha256:{Sha256}\nsize {Content.Length}\n");
}

internal sealed class FakeRepo(string id, HubRepoType type, string commit, IReadOnlyList<FakeFile> files)
{
    public string Id => id;
    public HubRepoType Type => type;
    public string Commit => commit;
    public IReadOnlyList<FakeFile> Files => files;
    public FakeFile File(string path) => files.Single(f => f.Path == path);
}

/// <summary>
/// A minimal HTTP/1.1 Hugging Face hub on 127.0.0.1 (one request per connection): the repo-info API, resolve
/// URLs with the hub's headers (LFS files redirect to a CDN path, absolute or relative), Range requests, a
/// log of requests and fault injection.
/// </summary>
internal sealed class FakeHubServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly List<FakeRepo> _repos = [];

    public FakeHubServer()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = Task.Run(AcceptLoop);
    }

    public int Port { get; }
    public string Url => $"http://127.0.0.1:{Port}";
    public ConcurrentQueue<HubRequest> Requests { get; } = new();

    /// <summary>Called for every request; a non-null fault replaces the normal answer.</summary>
    public Func<HubRequest, Fault?>? OnRequest { get; set; }

    /// <summary>LFS redirects use an absolute URL (else a relative one).</summary>
    public bool AbsoluteRedirects { get; set; } = true;

    /// <summary>Range headers are ignored (full 200 answers), as some servers do.</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>Only requests with this bearer token are served; others get 401.</summary>
    public string? RequiredToken { get; set; }

    public FakeRepo Add(FakeRepo repo)
    {
        lock (_repos) _repos.Add(repo);
        return repo;
    }

    public int Count(Func<HubRequest, bool> predicate) => Requests.Count(predicate);

    public int Gets(string pathContains) => Count(r => r.Method == "GET" && r.Path.Contains(pathContains, StringComparison.Ordinal));

    private Task AcceptLoop() => TestHttp.AcceptLoop(_listener, _stop.Token, Serve);

    private async Task Serve(NetworkStream stream)
    {
        if (await TestHttp.ReadHead(stream) is not { } head) return;
        var (method, target, headers) = head;
        var req = new HubRequest(method, target, headers);
        Requests.Enqueue(req);
        var fault = OnRequest?.Invoke(req);
        if (fault is Fault.Delay d)
        {
            await Task.Delay(d.Time);
            fault = null;
        }
        if (fault is Fault.Status s)
        {
            await Write(stream, req, s.Code, new Dictionary<string, string>(), Encoding.UTF8.GetBytes("{\"error\":\"injected\"}"));
            return;
        }
        if (RequiredToken is not null && req.Header("authorization") != "Bearer " + RequiredToken && !req.Path.StartsWith("/cdn/", StringComparison.Ordinal))
        {
            await Write(stream, req, 401, new() { ["X-Error-Code"] = "GatedRepo" }, Encoding.UTF8.GetBytes("{\"error\":\"gated\"}"));
            return;
        }
        await Route(stream, req, fault);
    }

    private FakeRepo? Find(HubRepoType type, string org, string name)
    {
        lock (_repos) return _repos.FirstOrDefault(r => r.Type == type && r.Id == org + "/" + name);
    }

    private async Task Route(NetworkStream stream, HubRequest req, Fault? fault)
    {
        var path = Uri.UnescapeDataString(req.Path.Split('?')[0]);
        var seg = path.TrimStart('/').Split('/');
        var notFound = Encoding.UTF8.GetBytes("{\"error\":\"not found\"}");
        // /api/{models|datasets}/{org}/{name}/revision/{rev}
        if (seg.Length == 6 && seg[0] == "api" && seg[4] == "revision")
        {
            var repo = Find(seg[1] == "datasets" ? HubRepoType.Dataset : HubRepoType.Model, seg[2], seg[3]);
            if (repo is null) { await Write(stream, req, 404, new() { ["X-Error-Code"] = "RepoNotFound" }, notFound); return; }
            if (seg[5] != "main" && seg[5] != repo.Commit) { await Write(stream, req, 404, new() { ["X-Error-Code"] = "RevisionNotFound" }, notFound); return; }
            var json = JsonSerializer.Serialize(new
            {
                id = repo.Id,
                sha = repo.Commit,
                siblings = repo.Files.Select(f => f.Lfs
                    ? (object)new { rfilename = f.Path, size = f.Content.Length, blobId = HfHubClient.GitBlobSha1(f.Pointer), lfs = new { sha256 = f.Sha256, size = f.Content.Length, pointerSize = f.Pointer.Length } }
                    : new { rfilename = f.Path, size = f.Content.Length, blobId = f.GitSha1 }),
            });
            await Write(stream, req, 200, new() { ["Content-Type"] = "application/json" }, Encoding.UTF8.GetBytes(json));
            return;
        }
        // /cdn/{sha256}
        if (seg.Length == 2 && seg[0] == "cdn")
        {
            FakeFile? file;
            lock (_repos) file = _repos.SelectMany(r => r.Files).FirstOrDefault(f => f.Lfs && f.Sha256 == seg[1]);
            if (file is null) { await Write(stream, req, 404, new(), notFound); return; }
            await WriteContent(stream, req, new() { ["ETag"] = $"\"{file.Sha256}\"" }, file.Content, fault);
            return;
        }
        // [/datasets]/{org}/{name}/resolve/{rev}/{path...}
        var type = HubRepoType.Model;
        if (seg[0] == "datasets") { type = HubRepoType.Dataset; seg = seg[1..]; }
        if (seg.Length >= 5 && seg[2] == "resolve")
        {
            var repo = Find(type, seg[0], seg[1]);
            if (repo is null) { await Write(stream, req, 404, new() { ["X-Error-Code"] = "RepoNotFound" }, notFound); return; }
            if (seg[3] != "main" && seg[3] != repo.Commit) { await Write(stream, req, 404, new() { ["X-Error-Code"] = "RevisionNotFound" }, notFound); return; }
            var filePath = string.Join('/', seg[4..]);
            var file = repo.Files.FirstOrDefault(f => f.Path == filePath);
            if (file is null) { await Write(stream, req, 404, new() { ["X-Error-Code"] = "EntryNotFound" }, notFound); return; }
            if (file.Lfs)
            {
                var location = (AbsoluteRedirects ? Url : "") + "/cdn/" + file.Sha256;
                await Write(stream, req, 302, new()
                {
                    ["Location"] = location,
                    ["X-Repo-Commit"] = repo.Commit,
                    ["ETag"] = $"\"{HfHubClient.GitBlobSha1(file.Pointer)}\"",
                    ["X-Linked-Etag"] = $"\"{file.Sha256}\"",
                    ["X-Linked-Size"] = file.Content.Length.ToString(System.Globalization.CultureInfo.InvariantCulture),
                }, []);
                return;
            }
            await WriteContent(stream, req, new() { ["ETag"] = $"\"{file.GitSha1}\"", ["X-Repo-Commit"] = repo.Commit }, file.Content, fault);
            return;
        }
        await Write(stream, req, 404, new(), notFound);
    }

    private async Task WriteContent(NetworkStream stream, HubRequest req, Dictionary<string, string> headers, byte[] content, Fault? fault)
    {
        if (fault is Fault.Corrupt)
        {
            content = (byte[])content.Clone();
            content[content.Length / 2] ^= 0xFF;
        }
        var status = 200;
        var start = 0;
        var range = req.Header("range");
        if (range is not null && !IgnoreRange && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = int.Parse(range[6..^1], System.Globalization.CultureInfo.InvariantCulture);
            if (start >= content.Length)
            {
                await Write(stream, req, 416, new() { ["Content-Range"] = $"bytes */{content.Length}" }, []);
                return;
            }
            status = 206;
            headers["Content-Range"] = $"bytes {start}-{content.Length - 1}/{content.Length}";
        }
        headers["Accept-Ranges"] = "bytes";
        var body = content.AsSpan(start).ToArray();
        if (fault is Fault.CutAfter cut && req.Method == "GET")
        {
            await WriteHead(stream, status, headers, body.Length);
            await stream.WriteAsync(body.AsMemory(0, Math.Min(cut.Bytes, body.Length)));
            await stream.FlushAsync();
            stream.Socket.LingerState = new LingerOption(true, 0);
            stream.Socket.Close(); // reset mid-body
            return;
        }
        await Write(stream, req, status, headers, body);
    }

    private static async Task WriteHead(NetworkStream stream, int status, Dictionary<string, string> headers, long length)
    {
        var sb = new StringBuilder($"HTTP/1.1 {status} {Reason(status)}\r\n");
        foreach (var (k, v) in headers) sb.Append(k).Append(": ").Append(v).Append("\r\n");
        sb.Append("Content-Length: ").Append(length).Append("\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()));
    }

    private static async Task Write(NetworkStream stream, HubRequest req, int status, Dictionary<string, string> headers, byte[] body)
    {
        await WriteHead(stream, status, headers, body.Length);
        if (req.Method != "HEAD") await stream.WriteAsync(body);
        await stream.FlushAsync();
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK", 206 => "Partial Content", 302 => "Found", 401 => "Unauthorized", 404 => "Not Found",
        416 => "Range Not Satisfiable", 500 => "Internal Server Error", _ => "Status",
    };

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
        }
        _stop.Dispose();
    }

    /// <summary>A small model repo: config.json, a tokenizer in a nested folder, and a few-hundred-KB LFS safetensors.</summary>
    public static FakeRepo ModelRepo(string id = "test-org/tiny-model", int weightsBytes = 300_000, HubRepoType type = HubRepoType.Model, int seed = 1)
    {
        var rng = new Random(seed);
        var weights = new byte[weightsBytes];
        rng.NextBytes(weights);
        var commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(id + seed)));
        return new FakeRepo(id, type, commit,
        [
            new FakeFile("config.json", Encoding.UTF8.GetBytes("{\"model_type\":\"qwen2\",\"hidden_size\":8}"), false),
            new FakeFile("model.safetensors", weights, true),
            new FakeFile("tokenizer/vocab.json", Encoding.UTF8.GetBytes("{\"a\":0,\"b\":1}"), false),
            new FakeFile("docs/deep/README.md", Encoding.UTF8.GetBytes("# tiny\n"), false),
        ]);
    }
}
