using System.Collections.Concurrent;
using Osprey.Hub;
using Osprey.Hub.Download;

namespace Osprey.Tests.Hub.Download;

/// <summary>A fake hub on 127.0.0.1 serving one tiny model repo, and a temporary cache folder, per test.</summary>
public abstract class HubServerTestBase : IAsyncLifetime
{
    private protected readonly FakeHubServer _server = new();
    private protected readonly TempDirectory _dir = new();
    private protected FakeRepo _repo = null!;

    public Task InitializeAsync()
    {
        _repo = _server.Add(FakeHubServer.ModelRepo());
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private protected string Cache => Path.Combine(_dir.Path, "hub");
}

/// <summary>The Hugging Face download client against a real HTTP hub on 127.0.0.1 (no environment variables).</summary>
public sealed class HfHubClientTests : HubServerTestBase
{

    private HfHubClient Client(string? token = null, TimeSpan? timeout = null, bool offline = false, int retries = 3) => new(new HubClientOptions
    {
        Endpoint = _server.Url,
        CacheDir = Cache,
        Token = token,
        Offline = offline,
        MaxRetries = retries,
        InitialBackoff = TimeSpan.FromMilliseconds(10),
        MaxBackoff = TimeSpan.FromMilliseconds(50),
        RequestTimeout = timeout ?? TimeSpan.FromSeconds(10),
        LockTimeout = TimeSpan.FromSeconds(30),
    });

    private static string Etag(FakeFile f) => f.Lfs ? f.Sha256 : f.GitSha1;

    private void AssertSnapshot(string snapshot, FakeRepo repo, IEnumerable<FakeFile>? only = null)
    {
        foreach (var f in only ?? repo.Files)
        {
            var file = Path.Combine(snapshot, f.Path);
            Assert.Equal(f.Content, File.ReadAllBytes(file));
        }
    }

    [Fact]
    public async Task DownloadBuildsTheHuggingFaceCacheLayout()
    {
        using var client = Client();
        var progress = new ConcurrentBag<HubDownloadProgress>();
        var snapshot = await client.DownloadAsync(_repo.Id, new HubDownloadOptions { Progress = progress.Add });

        var repoDir = Path.Combine(Cache, "models--test-org--tiny-model");
        Assert.Equal(Path.Combine(repoDir, "snapshots", _repo.Commit), snapshot);
        Assert.Equal(_repo.Commit, File.ReadAllText(Path.Combine(repoDir, "refs", "main")));
        var blobs = Directory.GetFiles(Path.Combine(repoDir, "blobs")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(_repo.Files.Select(Etag).Order(StringComparer.Ordinal).ToArray(), blobs);
        foreach (var f in _repo.Files)
        {
            var pointer = new FileInfo(Path.Combine(snapshot, f.Path));
            Assert.NotNull(pointer.LinkTarget);
            var depth = f.Path.Count(c => c == '/');
            Assert.Equal(string.Concat(Enumerable.Repeat("../", depth + 2)) + "blobs/" + Etag(f), pointer.LinkTarget);
            Assert.Equal(f.Content, File.ReadAllBytes(Path.Combine(repoDir, "blobs", Etag(f))));
        }
        AssertSnapshot(snapshot, _repo);
        Assert.Empty(Directory.GetFiles(repoDir, "*.incomplete", SearchOption.AllDirectories));
        Assert.True(Directory.Exists(Path.Combine(Cache, ".locks", "models--test-org--tiny-model")));

        var total = _repo.Files.Sum(f => (long)f.Content.Length);
        Assert.All(progress, p => Assert.Equal(total, p.Total));
        Assert.Contains(progress, p => p.Bytes == total);
        Assert.Contains(progress, p => p.File == "model.safetensors" && p.FileBytes == p.FileTotal && p.FileTotal == 300_000);

        // The cache finder Osprey already has sees it through refs/main.
        Assert.Equal(snapshot, HubCache.FindHuggingFace(_repo.Id, [Cache]));
        // The LFS file came through the redirect to the CDN path, with the sha256 etag.
        Assert.Equal(1, _server.Gets("/cdn/"));
    }

    [Fact]
    public async Task ASecondDownloadReusesTheBlobs()
    {
        using var client = Client();
        await client.DownloadAsync(_repo.Id);
        var contentGets = _server.Gets("/resolve/") + _server.Gets("/cdn/");
        Assert.Equal(3 + 1, contentGets);

        var again = await client.DownloadAsync(_repo.Id);
        Assert.Equal(contentGets, _server.Gets("/resolve/") + _server.Gets("/cdn/"));
        AssertSnapshot(again, _repo);

        // With the snapshot folder gone but the blobs kept, files are HEADed and re-linked, never re-fetched.
        Directory.Delete(again, recursive: true);
        var third = await client.DownloadAsync(_repo.Id);
        Assert.Equal(contentGets, _server.Gets("/resolve/") + _server.Gets("/cdn/"));
        AssertSnapshot(third, _repo);
    }

    [Fact]
    public async Task IncludeAndExcludeGlobsSelectFiles()
    {
        using var client = Client();
        var snapshot = await client.DownloadAsync(_repo.Id, new HubDownloadOptions { Include = ["*.json", "*.safetensors"], Exclude = ["tokenizer/"] });
        var files = Directory.GetFiles(snapshot, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(snapshot, p).Replace('\\', '/')).Order(StringComparer.Ordinal);
        Assert.Equal(["config.json", "model.safetensors"], files);
        Assert.Equal(0, _server.Gets("vocab.json"));
        Assert.Equal(0, _server.Gets("README.md"));
    }

    [Theory]
    [InlineData("config.json", "*.json", true)]
    [InlineData("tokenizer/vocab.json", "*.json", true)]
    [InlineData("model.safetensors", "*.json", false)]
    [InlineData("tokenizer/vocab.json", "tokenizer/", true)]
    [InlineData("model-00001-of-00002.safetensors", "model-0000?-of-*.safetensors", true)]
    [InlineData("a.bin", "[ab].bin", true)]
    [InlineData("c.bin", "[!ab].bin", true)]
    [InlineData("b.bin", "[!ab].bin", false)]
    [InlineData("x.json", "X.JSON", false)]
    public void GlobsMatchLikeFnmatch(string path, string pattern, bool expected) => Assert.Equal(expected, HubGlob.IsMatch(path, pattern));

    [Fact]
    public async Task LocalDirGetsPlainFilesAndIsReused()
    {
        using var client = Client();
        var local = Path.Combine(_dir.Path, "plain");
        var result = await client.DownloadAsync(_repo.Id, new HubDownloadOptions { LocalDir = local });
        Assert.Equal(Path.GetFullPath(local), result);
        foreach (var f in _repo.Files)
        {
            var info = new FileInfo(Path.Combine(local, f.Path));
            Assert.Null(info.LinkTarget);
            Assert.Equal(f.Content, File.ReadAllBytes(info.FullName));
            var meta = File.ReadAllLines(Path.Combine(local, ".cache", "huggingface", "download", f.Path + ".metadata"));
            Assert.Equal(_repo.Commit, meta[0]);
            Assert.Equal(Etag(f), meta[1]);
        }
        Assert.False(Directory.Exists(Path.Combine(Cache, "models--test-org--tiny-model")));
        var gets = _server.Gets("/resolve/") + _server.Gets("/cdn/");
        await client.DownloadAsync(_repo.Id, new HubDownloadOptions { LocalDir = local });
        Assert.Equal(gets, _server.Gets("/resolve/") + _server.Gets("/cdn/"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ACutConnectionIsResumedWithARange(bool absoluteRedirects)
    {
        _server.AbsoluteRedirects = absoluteRedirects;
        var cdnGets = 0;
        _server.OnRequest = r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal) && r.Method == "GET" && Interlocked.Increment(ref cdnGets) == 1
            ? new Fault.CutAfter(150_000) : null;
        using var client = Client();
        var snapshot = await client.DownloadAsync(_repo.Id);
        AssertSnapshot(snapshot, _repo);
        var cdn = _server.Requests.Where(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal) && r.Method == "GET").ToArray();
        Assert.Equal(2, cdn.Length);
        Assert.Null(cdn[0].Header("range"));
        var range = cdn[1].Header("range");
        Assert.NotNull(range);
        Assert.StartsWith("bytes=", range);
        Assert.True(long.Parse(range[6..^1], System.Globalization.CultureInfo.InvariantCulture) > 0);
    }

    [Fact]
    public async Task AWrongChecksumIsRejectedAndNothingIsVisible()
    {
        _server.OnRequest = r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal) ? new Fault.Corrupt() : null;
        using var client = Client();
        var e = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync(_repo.Id));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains(_repo.Id, e.Message);
        Assert.Contains("sha256 check", e.Message);
        Assert.Contains(_repo.File("model.safetensors").Sha256, e.Message);
        var repoDir = Path.Combine(Cache, "models--test-org--tiny-model");
        Assert.False(File.Exists(Path.Combine(repoDir, "blobs", _repo.File("model.safetensors").Sha256)));
        Assert.False(File.Exists(Path.Combine(repoDir, "snapshots", _repo.Commit, "model.safetensors")));
        // The rejected bytes are gone; other files cancelled mid-way may keep their .incomplete for a later resume.
        Assert.False(File.Exists(Path.Combine(repoDir, "blobs", _repo.File("model.safetensors").Sha256 + ".incomplete")));
        Assert.False(File.Exists(Path.Combine(repoDir, "refs", "main")));
    }

    [Fact]
    public async Task ServerErrorsAreRetried()
    {
        var apiCalls = 0;
        var cdnCalls = 0;
        _server.OnRequest = r =>
            (r.Path.StartsWith("/api/", StringComparison.Ordinal) && Interlocked.Increment(ref apiCalls) <= 2)
            || (r.Path.StartsWith("/cdn/", StringComparison.Ordinal) && Interlocked.Increment(ref cdnCalls) <= 2)
                ? new Fault.Status(500) : null;
        using var client = Client();
        var snapshot = await client.DownloadAsync(_repo.Id);
        AssertSnapshot(snapshot, _repo);
        Assert.Equal(3, apiCalls);
        Assert.Equal(3, cdnCalls);
    }

    [Fact]
    public async Task RetriesRunOutWithAPlainError()
    {
        _server.OnRequest = r => r.Path.StartsWith("/api/", StringComparison.Ordinal) ? new Fault.Status(503) : null;
        using var client = Client(retries: 2);
        var e = await Assert.ThrowsAnyAsync<OspreyException>(() => client.DownloadAsync(_repo.Id));
        Assert.Contains("failed after 3 attempts", e.Message);
        Assert.Contains(_repo.Id, e.Message);
        Assert.Equal(3, _server.Count(r => r.Path.StartsWith("/api/", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task GatedReposAskForAToken()
    {
        _server.RequiredToken = "hf_secret";
        using (var client = Client())
        {
            var e = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync(_repo.Id));
            Assert.Contains("gated or private", e.Message);
            Assert.Contains("HF_TOKEN", e.Message);
            Assert.Contains(_repo.Id, e.Message);
        }
        using (var client = Client(token: "hf_secret"))
            AssertSnapshot(await client.DownloadAsync(_repo.Id), _repo);
        Assert.Contains(_server.Requests, r => r.Header("authorization") == "Bearer hf_secret");
    }

    [Fact]
    public async Task MissingReposAndRevisionsSayNotFound()
    {
        using var client = Client();
        var e = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync("test-org/nope"));
        Assert.Contains("not found", e.Message);
        Assert.Contains("test-org/nope", e.Message);
        var r = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync(_repo.Id, new HubDownloadOptions { Revision = "v9" }));
        Assert.Contains("revision v9", r.Message);
    }

    [Fact]
    public async Task ASlowResponseTimesOutAndIsRetried()
    {
        var cdnCalls = 0;
        _server.OnRequest = r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal) && Interlocked.Increment(ref cdnCalls) == 1
            ? new Fault.Delay(TimeSpan.FromSeconds(3)) : null;
        using var client = Client(timeout: TimeSpan.FromMilliseconds(500));
        var snapshot = await client.DownloadAsync(_repo.Id);
        AssertSnapshot(snapshot, _repo);
        Assert.Equal(2, cdnCalls);
    }

    [Fact]
    public async Task OfflineUsesTheCacheOnly()
    {
        using (var offline = Client(offline: true))
        {
            var e = await Assert.ThrowsAsync<OspreyException>(() => offline.DownloadAsync(_repo.Id));
            Assert.Contains("HF_HUB_OFFLINE", e.Message);
            Assert.Contains(_repo.Id, e.Message);
        }
        Assert.Empty(_server.Requests);
        string snapshot;
        using (var online = Client()) snapshot = await online.DownloadAsync(_repo.Id);
        var seen = _server.Requests.Count;
        using (var offline = Client(offline: true))
        {
            Assert.Equal(snapshot, await offline.DownloadAsync(_repo.Id));
            Assert.Equal(snapshot, await offline.DownloadAsync(_repo.Id, new HubDownloadOptions { Revision = _repo.Commit }));
        }
        Assert.Equal(seen, _server.Requests.Count);
    }

    [Fact]
    public async Task ConcurrentDownloadsOfOneRepoLeaveOneCorrectCopy()
    {
        // Slow the CDN so both downloads overlap on the big file.
        _server.OnRequest = r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal) ? new Fault.Delay(TimeSpan.FromMilliseconds(300)) : null;
        using var a = Client();
        using var b = Client();
        var results = await Task.WhenAll(a.DownloadAsync(_repo.Id), b.DownloadAsync(_repo.Id));
        Assert.Equal(results[0], results[1]);
        AssertSnapshot(results[0], _repo);
        var repoDir = Path.Combine(Cache, "models--test-org--tiny-model");
        Assert.Equal(_repo.Files.Count, Directory.GetFiles(Path.Combine(repoDir, "blobs")).Length);
        Assert.Empty(Directory.GetFiles(repoDir, "*.incomplete", SearchOption.AllDirectories));
        Assert.Equal(1, _server.Gets("/cdn/")); // the second waited on the lock, then reused the blob
    }

    [Fact]
    public async Task DatasetsUseTheirOwnPrefixes()
    {
        var ds = _server.Add(FakeHubServer.ModelRepo("test-org/tiny-data", 1000, HubRepoType.Dataset, seed: 2));
        using var client = Client();
        var snapshot = await client.DownloadAsync(ds.Id, new HubDownloadOptions { RepoType = HubRepoType.Dataset });
        Assert.Equal(Path.Combine(Cache, "datasets--test-org--tiny-data", "snapshots", ds.Commit), snapshot);
        AssertSnapshot(snapshot, ds);
        Assert.Contains(_server.Requests, r => r.Path.StartsWith("/api/datasets/test-org/tiny-data/revision/main", StringComparison.Ordinal));
        Assert.Contains(_server.Requests, r => r.Path.StartsWith("/datasets/test-org/tiny-data/resolve/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RepoInfoListsSizesAndLfsHashes()
    {
        using var client = Client();
        var info = await client.RepoInfoAsync(_repo.Id);
        Assert.Equal(_repo.Commit, info.Sha);
        var st = info.Files.Single(f => f.Path == "model.safetensors");
        Assert.Equal(300_000, st.Size);
        Assert.Equal(_repo.File("model.safetensors").Sha256, st.LfsSha256);
        var cfg = info.Files.Single(f => f.Path == "config.json");
        Assert.Null(cfg.LfsSha256);
        Assert.Equal(_repo.File("config.json").GitSha1, cfg.BlobId);
        var meta = await client.FileMetadataAsync(_repo.Id, HubRepoType.Model, "main", "model.safetensors");
        Assert.Equal(_repo.File("model.safetensors").Sha256, meta.Etag);
        Assert.Equal(_repo.Commit, meta.CommitHash);
        Assert.Equal(300_000, meta.Size);
        Assert.EndsWith("/cdn/" + meta.Etag, meta.Location.AbsoluteUri);
    }

    [Fact]
    public void GitBlobSha1MatchesGit() =>
        // `printf 'hello\n' | git hash-object --stdin`
        Assert.Equal("ce013625030ba8dba906f756967f9e9ca394464a", HfHubClient.GitBlobSha1("hello\n"u8));
}

/// <summary>Resuming partial files left by an earlier run, locks held by another process, and hub outages.</summary>
public sealed class HfHubClientRobustnessTests : HubServerTestBase
{
    private string Blobs => Path.Combine(Cache, "models--test-org--tiny-model", "blobs");

    private HfHubClient Client(TimeSpan? lockTimeout = null, string? endpoint = null) => new(new HubClientOptions
    {
        Endpoint = endpoint ?? _server.Url,
        CacheDir = Cache,
        MaxRetries = 2,
        InitialBackoff = TimeSpan.FromMilliseconds(10),
        MaxBackoff = TimeSpan.FromMilliseconds(20),
        RequestTimeout = TimeSpan.FromSeconds(10),
        LockTimeout = lockTimeout ?? TimeSpan.FromSeconds(30),
    });

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task APartialFileFromAnEarlierRunIsResumed(bool serverIgnoresRange)
    {
        _server.IgnoreRange = serverIgnoresRange;
        var weights = _repo.File("model.safetensors");
        Directory.CreateDirectory(Blobs);
        File.WriteAllBytes(Path.Combine(Blobs, weights.Sha256 + ".incomplete"), weights.Content[..100_000]);
        using var client = Client();
        var snapshot = await client.DownloadAsync(_repo.Id);
        Assert.Equal(weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        var cdn = _server.Requests.Single(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal) && r.Method == "GET");
        Assert.Equal("bytes=100000-", cdn.Header("range"));
        Assert.False(File.Exists(Path.Combine(Blobs, weights.Sha256 + ".incomplete")));
    }

    [Fact]
    public async Task ADeletedBlobIsFetchedAgain()
    {
        using var client = Client();
        var snapshot = await client.DownloadAsync(_repo.Id);
        var weights = _repo.File("model.safetensors");
        File.Delete(Path.Combine(Blobs, weights.Sha256));
        Assert.NotNull(new FileInfo(Path.Combine(snapshot, "model.safetensors")).LinkTarget);
        await client.DownloadAsync(_repo.Id);
        Assert.Equal(2, _server.Gets("/cdn/"));
        Assert.Equal(weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
    }

    [Fact]
    public async Task AFailedDownloadLeavesNoRef()
    {
        _server.OnRequest = r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal) ? new Fault.Corrupt() : null;
        using var client = Client();
        await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync(_repo.Id));
        Assert.False(File.Exists(Path.Combine(Cache, "models--test-org--tiny-model", "refs", "main")));
        Assert.Null(HfCacheLayout.FindSnapshot(Cache, _repo.Id, HubRepoType.Model, "main"));
    }

    [Fact]
    public async Task ACorruptSmallFileFailsItsGitSha1Check()
    {
        _server.OnRequest = r => r.Method == "GET" && r.Path.EndsWith("/config.json", StringComparison.Ordinal) ? new Fault.Corrupt() : null;
        using var client = Client();
        var e = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync(_repo.Id, new HubDownloadOptions { Include = ["config.json"] }));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("git sha1 check", e.Message);
        Assert.Empty(Directory.GetFiles(Blobs));
    }

    [Fact]
    public async Task ALockHeldElsewhereIsWaitedFor()
    {
        var weights = _repo.File("model.safetensors");
        var lockPath = Path.Combine(Cache, ".locks", "models--test-org--tiny-model", weights.Sha256 + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        // Another downloader holds the blob's lock (FileShare.None is an flock, as Python's filelock takes).
        var held = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        using var client = Client();
        var download = client.DownloadAsync(_repo.Id);
        await Task.Delay(500);
        Assert.False(download.IsCompleted);
        Assert.Equal(0, _server.Gets("/cdn/"));
        await held.DisposeAsync();
        var snapshot = await download;
        Assert.Equal(weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
    }

    [Fact]
    public async Task ALockHeldTooLongIsReported()
    {
        var weights = _repo.File("model.safetensors");
        var lockPath = Path.Combine(Cache, ".locks", "models--test-org--tiny-model", weights.Sha256 + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        using var held = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        using var client = Client(lockTimeout: TimeSpan.FromMilliseconds(300));
        var e = await Assert.ThrowsAsync<OspreyException>(() => client.DownloadAsync(_repo.Id));
        Assert.Contains("locked by another download", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public async Task AnUnreachableHubFallsBackToTheCache()
    {
        string snapshot;
        using (var client = Client()) snapshot = await client.DownloadAsync(_repo.Id);
        // A port nothing listens on: connections are refused.
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var deadPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var offline = Client(endpoint: $"http://127.0.0.1:{deadPort}");
        Assert.Equal(snapshot, await offline.DownloadAsync(_repo.Id));
        var e = await Assert.ThrowsAnyAsync<OspreyException>(() => offline.DownloadAsync("test-org/other"));
        Assert.Contains("failed after 3 attempts", e.Message);
    }
}

/// <summary>A lock taken by another process (util-linux <c>flock</c>, the same flock(2) Python's filelock takes) is honoured.</summary>
public sealed class HfHubClientProcessLockTests
{
    [Fact]
    public async Task ALockHeldByAnotherProcessIsWaitedFor()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/flock")) return; // the flock tool is the other process
        await using var server = new FakeHubServer();
        var repo = server.Add(FakeHubServer.ModelRepo());
        using var dir = new TempDirectory();
        var cache = Path.Combine(dir.Path, "hub");
        var weights = repo.File("model.safetensors");
        var lockPath = Path.Combine(cache, ".locks", "models--test-org--tiny-model", weights.Sha256 + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        var ready = Path.Combine(dir.Path, "ready");
        using var holder = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/usr/bin/flock", [lockPath, "sh", "-c", $"touch '{ready}'; sleep 1.5"]))!;
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!File.Exists(ready) && waited.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
        Assert.True(File.Exists(ready));

        using var client = new HfHubClient(new HubClientOptions { Endpoint = server.Url, CacheDir = cache, LockTimeout = TimeSpan.FromSeconds(30) });
        var started = System.Diagnostics.Stopwatch.StartNew();
        var snapshot = await client.DownloadAsync(repo.Id);
        await holder.WaitForExitAsync();
        Assert.True(started.Elapsed > TimeSpan.FromSeconds(0.8), $"the download did not wait for the other process's lock ({started.Elapsed})");
        Assert.Equal(weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
    }
}
