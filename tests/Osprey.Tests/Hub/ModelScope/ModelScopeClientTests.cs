using System.Collections.Concurrent;
using Osprey.Hub.Download;
using Osprey.Hub.ModelScope;

namespace Osprey.Tests.Hub.ModelScope;

/// <summary>The ModelScope client against a real HTTP server on 127.0.0.1 (no environment variables).</summary>
public sealed class ModelScopeClientTests : IAsyncLifetime
{
    private readonly ModelScopeTestServer _server = new();
    private readonly TempDirectory _dir = new();
    private MsRepo _repo = null!;

    private static readonly byte[] Weights = MsRepo.Bytes(300_000, 1);

    public Task InitializeAsync()
    {
        _repo = _server.Add(new MsRepo("owner/tiny-1.5B", HubRepoType.Model)
            .With("master",
                ("config.json", "{\"model_type\":\"qwen2\"}"u8.ToArray()),
                ("model.safetensors", Weights),
                ("sub/dir/tokenizer.json", MsRepo.Bytes(5000, 2)),
                ("README.md", "# tiny"u8.ToArray()))
            .With("v1.0",
                ("config.json", "{\"model_type\":\"old\"}"u8.ToArray()),
                ("model.safetensors", MsRepo.Bytes(1000, 3))));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private string Cache => Path.Combine(_dir.Path, "modelscope", "hub");

    private string ModelFolder => Path.Combine(Cache, "models", "owner", "tiny-1___5B");

    private ModelScopeClient Client(string? token = null, TimeSpan? timeout = null, bool offline = false, int retries = 3, int pageSize = 100) => new(new ModelScopeClientOptions
    {
        Endpoint = _server.Url,
        CacheDir = Cache,
        Token = token,
        Offline = offline,
        MaxRetries = retries,
        InitialBackoff = TimeSpan.FromMilliseconds(5),
        MaxBackoff = TimeSpan.FromMilliseconds(20),
        RequestTimeout = timeout ?? TimeSpan.FromSeconds(10),
        LockTimeout = TimeSpan.FromSeconds(5),
        DatasetPageSize = pageSize,
    }, null);

    private void AssertSame(string folder, MsRepo repo, string revision = "master")
    {
        foreach (var (path, content) in repo.Revisions[revision])
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(folder, path)));
    }

    [Fact]
    public async Task DownloadUsesModelScopesCacheLayoutAndTheMasterRevision()
    {
        using var client = Client();
        var folder = await client.DownloadAsync("owner/tiny-1.5B");
        Assert.Equal(ModelFolder, folder);
        AssertSame(folder, _repo);
        var list = Assert.Single(_server.Requests, r => r.Path.EndsWith("/repo/files", StringComparison.Ordinal));
        Assert.Equal("/api/v1/models/owner/tiny-1.5B/repo/files", list.Path);
        Assert.Equal("master", list.Q("Revision"));
        Assert.Equal("True", list.Q("Recursive"));
        Assert.Contains(_server.Requests, r => r.Path == "/api/v1/models/owner/tiny-1.5B/repo" && r.Q("FilePath") == "sub/dir/tokenizer.json" && r.Q("Revision") == "master");
        Assert.Equal(4, _server.FileGets);
        Assert.Equal(folder, Osprey.Hub.HubCache.FindModelScope("owner/tiny-1.5B", [Path.Combine(Cache, "models")]));
        Assert.False(Directory.EnumerateFiles(folder, "*.incomplete", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public async Task ASecondDownloadMakesNoFileRequests()
    {
        using var client = Client();
        await client.DownloadAsync("owner/tiny-1.5B");
        var before = _server.FileGets;
        await client.DownloadAsync("owner/tiny-1.5B");
        Assert.Equal(before, _server.FileGets);
    }

    [Fact]
    public async Task FilesAlreadyInTheCacheAreReusedAndWrongOnesReplaced()
    {
        // As the Python library leaves them: plain files under models/owner/name.
        Directory.CreateDirectory(ModelFolder);
        File.WriteAllBytes(Path.Combine(ModelFolder, "model.safetensors"), Weights);
        var wrong = "{\"model_type\":\"qwen3\"}"u8.ToArray(); // same size, other bytes
        File.WriteAllBytes(Path.Combine(ModelFolder, "config.json"), wrong);
        using var client = Client();
        await client.DownloadAsync("owner/tiny-1.5B");
        Assert.DoesNotContain(_server.Requests, r => r.Q("FilePath") == "model.safetensors");
        Assert.Contains(_server.Requests, r => r.Q("FilePath") == "config.json");
        AssertSame(ModelFolder, _repo);
    }

    [Fact]
    public async Task IncludeAndExcludeSelectFiles()
    {
        using var client = Client();
        var folder = await client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { Include = ["*.json", "sub/"], Exclude = ["sub/dir/*"] });
        Assert.True(File.Exists(Path.Combine(folder, "config.json")));
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(folder, "sub", "dir", "tokenizer.json")));
        Assert.Equal(1, _server.FileGets);
    }

    [Fact]
    public async Task ARevisionIsPassedToBothApis()
    {
        using var client = Client();
        var folder = await client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { Revision = "v1.0" });
        AssertSame(folder, _repo, "v1.0");
        Assert.All(_server.Requests, r => Assert.Equal("v1.0", r.Q("Revision")));
    }

    [Fact]
    public async Task ACutConnectionIsResumedWithARange()
    {
        var cut = 0;
        _server.RedirectFiles = true;
        _server.OnRequest = r => r.Path.StartsWith("/storage/", StringComparison.Ordinal) && r.Path.EndsWith("model.safetensors", StringComparison.Ordinal)
            && Interlocked.Increment(ref cut) == 1 ? new MsFault.CutAfter(100_000) : null;
        using var client = Client();
        var folder = await client.DownloadAsync("owner/tiny-1.5B");
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
        // The range goes with the file API request and with the redirect it follows.
        Assert.Contains(_server.Requests, r => r.Path.EndsWith("/repo", StringComparison.Ordinal) && r.Header("Range") == "bytes=100000-");
        var resumed = Assert.Single(_server.Requests, r => r.Header("Range") is not null && r.Path.StartsWith("/storage/", StringComparison.Ordinal));
        Assert.Equal("bytes=100000-", resumed.Header("Range"));
        Assert.EndsWith("model.safetensors", resumed.Path, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AWrongChecksumIsRejectedAndNothingIsVisible()
    {
        _server.OnRequest = r => r.Q("FilePath") == "model.safetensors" ? new MsFault.Corrupt() : null;
        using var client = Client();
        var e = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync("owner/tiny-1.5B"));
        Assert.Contains("model.safetensors", e.Message, StringComparison.Ordinal);
        Assert.Contains("sha256", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(ModelFolder, "model.safetensors")));
        // The rejected file's partial copy is gone too. (Other files cancelled mid-stream by the failure may keep
        // theirs: that is resume state, verified before it is ever used.)
        Assert.False(Directory.EnumerateFiles(Cache, "model.safetensors.incomplete", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public async Task ServerErrorsAreRetried()
    {
        var n = 0;
        _server.OnRequest = r => Interlocked.Increment(ref n) <= 2 ? new MsFault.Status(n == 1 ? 503 : 500) : null;
        using var client = Client();
        var folder = await client.DownloadAsync("owner/tiny-1.5B");
        AssertSame(folder, _repo);
        Assert.True(_server.Requests.Count(r => r.Path.EndsWith("/repo/files", StringComparison.Ordinal)) >= 2);
    }

    [Fact]
    public async Task RetriesRunOutWithAPlainError()
    {
        _server.OnRequest = r => r.IsFile ? new MsFault.Status(502) : null;
        using var client = Client(retries: 2);
        var e = await Assert.ThrowsAnyAsync<OspreyException>(() => client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { Include = ["config.json"] }));
        Assert.Contains("failed after 3 attempts", e.Message, StringComparison.Ordinal);
        Assert.Equal(3, _server.FileGets);
    }

    [Fact]
    public async Task ASlowResponseTimesOutAndIsRetried()
    {
        var n = 0;
        _server.OnRequest = r => r.IsFile && Interlocked.Increment(ref n) == 1 ? new MsFault.Delay(TimeSpan.FromSeconds(2)) : null;
        using var client = Client(timeout: TimeSpan.FromMilliseconds(300));
        var folder = await client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { Include = ["config.json"] });
        AssertSame(folder, new MsRepo("x/y", HubRepoType.Model).With("master", ("config.json", _repo.File("config.json"))));
        Assert.Equal(2, _server.FileGets);
    }

    [Fact]
    public async Task PrivateReposAskForMODELSCOPE_API_TOKEN()
    {
        _server.RequiredToken = "secret";
        using (var client = Client())
        {
            var e = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync("owner/tiny-1.5B"));
            Assert.Contains("MODELSCOPE_API_TOKEN", e.Message, StringComparison.Ordinal);
            Assert.Contains("401", e.Message, StringComparison.Ordinal);
        }
        using (var client = Client(token: "secret"))
        {
            var folder = await client.DownloadAsync("owner/tiny-1.5B");
            AssertSame(folder, _repo);
        }
        var last = _server.Requests.Last();
        Assert.Equal("Bearer secret", last.Header("Authorization"));
        Assert.Equal("m_session_id=secret", last.Header("Cookie"));
    }

    [Fact]
    public async Task MissingReposAndRevisionsSayNotFound()
    {
        using var client = Client();
        var repo = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync("owner/nope"));
        Assert.Contains("not found", repo.Message, StringComparison.Ordinal);
        Assert.Contains("owner/nope", repo.Message, StringComparison.Ordinal);
        var rev = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { Revision = "v9" }));
        Assert.Contains("not found", rev.Message, StringComparison.Ordinal);
        Assert.Contains("v9", rev.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OfflineUsesTheCacheOnly()
    {
        using (var offline = Client(offline: true))
        {
            var e = await Assert.ThrowsAsync<OspreyException>(() => offline.DownloadAsync("owner/tiny-1.5B"));
            Assert.Contains("OFFLINE", e.Message, StringComparison.Ordinal);
            Assert.Contains("not in", e.Message, StringComparison.Ordinal);
        }
        Assert.Empty(_server.Requests);
        using (var client = Client()) await client.DownloadAsync("owner/tiny-1.5B");
        var count = _server.Requests.Count;
        using (var offline = Client(offline: true))
            Assert.Equal(ModelFolder, await offline.DownloadAsync("owner/tiny-1.5B"));
        Assert.Equal(count, _server.Requests.Count);
    }

    [Fact]
    public async Task DatasetsUseTheirTreeApiPagesAndFolder()
    {
        var ds = _server.Add(new MsRepo("team/my.data", HubRepoType.Dataset).With("master",
            ("train.jsonl", MsRepo.Bytes(2000, 4)), ("test.jsonl", MsRepo.Bytes(100, 5)), ("data/a.parquet", MsRepo.Bytes(700, 6)),
            ("data/b.parquet", MsRepo.Bytes(800, 7)), ("README.md", "# data"u8.ToArray())));
        using var client = Client(pageSize: 2);
        var folder = await client.DownloadAsync("team/my.data", new HubDownloadOptions { RepoType = HubRepoType.Dataset });
        Assert.Equal(Path.Combine(Cache, "datasets", "team", "my___data"), folder);
        AssertSame(folder, ds);
        var pages = _server.Requests.Where(r => r.Path == "/api/v1/datasets/team/my.data/repo/tree").ToArray();
        Assert.True(pages.Length >= 3);
        Assert.All(pages, p => Assert.Equal("True", p.Q("Recursive")));
        Assert.Contains(_server.Requests, r => r.Path == "/api/v1/datasets/team/my.data/repo" && r.Q("FilePath") == "data/b.parquet");
    }

    [Fact]
    public async Task LocalDirGetsPlainFilesAndIsReused()
    {
        var local = Path.Combine(_dir.Path, "out");
        using var client = Client();
        var folder = await client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { LocalDir = local, MaxParallel = 1 });
        Assert.Equal(Path.GetFullPath(local), folder);
        AssertSame(folder, _repo);
        Assert.False(Directory.Exists(Path.Combine(Cache, "models")));
        var before = _server.FileGets;
        await client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { LocalDir = local });
        Assert.Equal(before, _server.FileGets);
    }

    [Fact]
    public async Task ProgressReachesTheTotal()
    {
        var seen = new ConcurrentBag<HubDownloadProgress>();
        using var client = Client();
        await client.DownloadAsync("owner/tiny-1.5B", new HubDownloadOptions { Progress = seen.Add });
        var total = _repo.Revisions["master"].Values.Sum(c => (long)c.Length);
        Assert.All(seen, p => Assert.Equal(total, p.Total));
        Assert.Contains(seen, p => p.Bytes == total);
    }

    [Fact]
    public async Task ConcurrentDownloadsOfOneRepoLeaveOneCorrectCopy()
    {
        using var a = Client();
        using var b = Client();
        await Task.WhenAll(a.DownloadAsync("owner/tiny-1.5B"), b.DownloadAsync("owner/tiny-1.5B"));
        AssertSame(ModelFolder, _repo);
    }

    [Fact]
    public void MainMeansMaster()
    {
        Assert.Equal("master", ModelScopeClient.NormalizeRevision("main"));
        Assert.Equal("v1.0", ModelScopeClient.NormalizeRevision("v1.0"));
    }
}
