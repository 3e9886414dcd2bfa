using System.ComponentModel;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Osprey.Hub.Download;

namespace Osprey.Tests.Hub;

/// <summary>
/// Runs tools/hf_reference_server.py, an independent stdlib-Python implementation of the Hugging Face Hub's
/// download protocol, over a temp folder of repos, and checks <see cref="HfHubClient"/> against it: the cache
/// layout huggingface_hub writes (refs, blobs named by sha256 / git sha1, snapshots), reuse without content
/// GETs, commit-sha revisions, datasets, gated repos, include/exclude, local dirs and resumed downloads.
/// </summary>
public sealed class ReferenceServerFixture : IDisposable
{
    public const string Token = "hf_reference_token";
    public const string ModelId = "org/tiny";
    public const string GatedId = "org/gated";
    public const string DatasetId = "org/data";

    public string Root { get; }
    public string RepoDir { get; }
    public string Url { get; }
    public string LogPath { get; }
    public string? StartError { get; }
    private readonly Process? _process;
    private readonly StringBuilder _stderr = new();

    public ReferenceServerFixture()
    {
        Root = Path.Combine(Path.GetTempPath(), "osprey-hubref-" + Guid.NewGuid().ToString("N"));
        RepoDir = Path.Combine(Root, "repos");
        LogPath = Path.Combine(Root, "requests.log");
        var rng = new Random(1234);
        var model = Path.Combine(RepoDir, "models", "org", "tiny", "main");
        Write(Path.Combine(model, "config.json"), Encoding.UTF8.GetBytes("{\"model_type\": \"tiny\", \"hidden_size\": 8}\n"));
        var weights = new byte[5000];
        rng.NextBytes(weights);
        Write(Path.Combine(model, "model.safetensors"), weights);
        Write(Path.Combine(model, "tokenizer.json"), Encoding.UTF8.GetBytes("{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\"}}\n"));
        Write(Path.Combine(model, "sub", "file.txt"), Encoding.UTF8.GetBytes("nested file\n"));
        var gated = Path.Combine(RepoDir, "models", "org", "gated", "main");
        Write(Path.Combine(gated, "config.json"), Encoding.UTF8.GetBytes("{\"gated\": true}\n"));
        var data = Path.Combine(RepoDir, "datasets", "org", "data", "main");
        Write(Path.Combine(data, "train.jsonl"), Encoding.UTF8.GetBytes("{\"text\": \"a\"}\n{\"text\": \"b\"}\n"));
        var big = new byte[3000];
        rng.NextBytes(big);
        Write(Path.Combine(data, "data", "part-0.parquet"), big); // over the 1024-byte threshold: an LFS file

        var script = Path.Combine(TestPaths.RepoRoot, "tools", "hf_reference_server.py");
        var psi = new ProcessStartInfo("python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { script, "--root", RepoDir, "--port", "0", "--token", Token, "--gated", GatedId, "--log", LogPath })
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            _process = Process.Start(psi) ?? throw new InvalidOperationException("Process.Start returned null");
        }
        catch (Win32Exception e)
        {
            StartError = $"python3 is not on PATH ({e.Message}); these tests need it to run tools/hf_reference_server.py (.ci/run installs it).";
            Url = "";
            return;
        }

        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_stderr) { _stderr.AppendLine(e.Data); } } };
        _process.BeginErrorReadLine();
        var first = _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90)).GetAwaiter().GetResult();
        const string prefix = "listening on ";
        if (first is null || !first.StartsWith(prefix, StringComparison.Ordinal))
        {
            string err;
            lock (_stderr) { err = _stderr.ToString(); }
            StartError = $"hf_reference_server.py did not start: first line '{first}', stderr: {err}";
            Url = "";
            return;
        }

        Url = first[prefix.Length..].Trim();
    }

    private static void Write(string path, byte[] bytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Fails the calling test with a clear message when the server could not start.</summary>
    public void EnsureStarted()
    {
        Assert.True(StartError is null, StartError);
    }

    /// <summary>The request log's lines: (method, path, range, status).</summary>
    public IReadOnlyList<(string Method, string Path, string Range, int Status)> Requests()
    {
        if (!File.Exists(LogPath))
        {
            return [];
        }

        using var fs = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(fs);
        var list = new List<(string, string, string, int)>();
        while (reader.ReadLine() is { } line)
        {
            var parts = line.Split('\t');
            if (parts.Length == 4)
            {
                list.Add((parts[0], parts[1], parts[2], int.Parse(parts[3])));
            }
        }

        return list;
    }

    /// <summary>GETs that transferred file content (a 200/206 of a resolve URL or of an LFS blob).</summary>
    public int ContentGets(Func<string, bool>? pathFilter = null) =>
        Requests().Count(r => r.Method == "GET" && r.Status is 200 or 206 && !r.Path.StartsWith("/api/", StringComparison.Ordinal)
            && (pathFilter is null || pathFilter(r.Path)));

    /// <summary>Stops a server process (if running) and deletes its repository folder.</summary>
    internal static void StopAndClean(Process? process, string root)
    {
        try
        {
            if (process is { HasExited: false })
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        process?.Dispose();
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public void Dispose()
    {
        StopAndClean(_process, Root);
    }
}

public sealed class ReferenceServerTests : IClassFixture<ReferenceServerFixture>, IDisposable
{
    private readonly ReferenceServerFixture _server;
    private readonly string _cache;

    public ReferenceServerTests(ReferenceServerFixture server)
    {
        _server = server;
        _cache = Path.Combine(server.Root, "cache-" + Guid.NewGuid().ToString("N"));
    }

    public void Dispose()
    {
    }

    private HfHubClient Client(string? token = null) => new(new HubClientOptions
    {
        Endpoint = _server.Url,
        CacheDir = _cache,
        InitialBackoff = TimeSpan.FromMilliseconds(10),
        MaxBackoff = TimeSpan.FromMilliseconds(50),
        Token = token,
    });

    private string RepoFolder(string kind, string org, string name, string rev = "main") =>
        Path.Combine(_server.RepoDir, kind, org, name, rev);

    private static string GitSha1(byte[] data)
    {
        var header = Encoding.ASCII.GetBytes($"blob {data.Length}\0");
        return Convert.ToHexStringLower(SHA1.HashData([.. header, .. data]));
    }

    private static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>The commit sha the server gives a revision, read through its API (not computed by Osprey).</summary>
    private async Task<string> ServerShaAsync(string apiKind, string repoId, string rev = "main")
    {
        using var http = new HttpClient();
        var json = await http.GetStringAsync($"{_server.Url}/api/{apiKind}/{repoId}/revision/{rev}");
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("sha").GetString()!;
    }

    private static IEnumerable<string> RepoFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(f => !f.StartsWith(".cache/", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    /// <summary>Every file of <paramref name="source"/> (or the listed ones) is in <paramref name="snapshot"/> with the same bytes.</summary>
    private static void AssertSameFiles(string source, string snapshot, IEnumerable<string>? only = null)
    {
        var expected = (only ?? RepoFiles(source)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, RepoFiles(snapshot).ToList());
        foreach (var rel in expected)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(source, rel)), File.ReadAllBytes(Path.Combine(snapshot, rel)));
        }
    }

    [Fact]
    public async Task Model_download_lays_out_the_cache_as_huggingface_hub_does()
    {
        _server.EnsureStarted();
        var sha = await ServerShaAsync("models", ReferenceServerFixture.ModelId);
        var snapshot = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions());

        var repoCache = Path.Combine(_cache, "models--org--tiny");
        Assert.Equal(Path.GetFullPath(Path.Combine(repoCache, "snapshots", sha)), Path.GetFullPath(snapshot));
        Assert.Equal(sha, File.ReadAllText(Path.Combine(repoCache, "refs", "main")).Trim());
        var source = RepoFolder("models", "org", "tiny");
        AssertSameFiles(source, snapshot);

        // blobs/ holds one file per content, named as huggingface_hub names them: the sha256 for LFS files
        // (model.safetensors: LFS by suffix) and the git blob sha1 for regular ones.
        var expectedBlobs = new Dictionary<string, string>
        {
            [Sha256(File.ReadAllBytes(Path.Combine(source, "model.safetensors")))] = "model.safetensors",
            [GitSha1(File.ReadAllBytes(Path.Combine(source, "config.json")))] = "config.json",
            [GitSha1(File.ReadAllBytes(Path.Combine(source, "tokenizer.json")))] = "tokenizer.json",
            [GitSha1(File.ReadAllBytes(Path.Combine(source, "sub", "file.txt")))] = "sub/file.txt",
        };
        var blobs = Directory.GetFiles(Path.Combine(repoCache, "blobs")).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedBlobs.Keys.Order(StringComparer.Ordinal).ToList(), blobs);
        foreach (var (blob, rel) in expectedBlobs)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(source, rel)), File.ReadAllBytes(Path.Combine(repoCache, "blobs", blob)));
        }

        // No partial downloads are left behind.
        Assert.Empty(Directory.GetFiles(Path.Combine(repoCache, "blobs"), "*.incomplete"));
    }

    [Fact]
    public async Task Second_download_reuses_the_cache_without_content_gets()
    {
        _server.EnsureStarted();
        var first = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions());
        var sha = Path.GetFileName(first);
        bool ThisRepo(string p) => p.Contains("/org/tiny/", StringComparison.Ordinal) || p.StartsWith("/lfs-blobs/", StringComparison.Ordinal);
        var before = _server.ContentGets(ThisRepo);
        Assert.True(before >= 4, $"the first download should GET 4 files, the log shows {before}");

        var second = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions());
        Assert.Equal(first, second);
        Assert.Equal(before, _server.ContentGets(ThisRepo));

        // By commit sha too: the snapshot is complete, nothing to fetch.
        var bySha = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions { Revision = sha });
        Assert.Equal(first, bySha);
        Assert.Equal(before, _server.ContentGets(ThisRepo));
    }

    [Fact]
    public async Task Revision_by_commit_sha_downloads_that_commit()
    {
        _server.EnsureStarted();
        var sha = await ServerShaAsync("models", ReferenceServerFixture.ModelId);
        var snapshot = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions { Revision = sha });
        Assert.Equal(Path.GetFullPath(Path.Combine(_cache, "models--org--tiny", "snapshots", sha)), Path.GetFullPath(snapshot));
        AssertSameFiles(RepoFolder("models", "org", "tiny"), snapshot);
        // huggingface_hub writes refs/{revision} only when the revision is not the commit itself.
        Assert.False(File.Exists(Path.Combine(_cache, "models--org--tiny", "refs", sha)));
    }

    [Fact]
    public async Task Dataset_repo_downloads_into_datasets_folder()
    {
        _server.EnsureStarted();
        var sha = await ServerShaAsync("datasets", ReferenceServerFixture.DatasetId);
        var snapshot = await Client().DownloadAsync(ReferenceServerFixture.DatasetId, new HubDownloadOptions { RepoType = HubRepoType.Dataset });
        var repoCache = Path.Combine(_cache, "datasets--org--data");
        Assert.Equal(Path.GetFullPath(Path.Combine(repoCache, "snapshots", sha)), Path.GetFullPath(snapshot));
        Assert.Equal(sha, File.ReadAllText(Path.Combine(repoCache, "refs", "main")).Trim());
        var source = RepoFolder("datasets", "org", "data");
        AssertSameFiles(source, snapshot);
        // data/part-0.parquet is LFS by size (3000 > 1024): its blob is named by sha256.
        Assert.True(File.Exists(Path.Combine(repoCache, "blobs", Sha256(File.ReadAllBytes(Path.Combine(source, "data", "part-0.parquet"))))));
    }

    [Fact]
    public async Task Gated_repo_needs_the_token()
    {
        _server.EnsureStarted();
        var e = await Assert.ThrowsAnyAsync<Exception>(() => Client().DownloadAsync(ReferenceServerFixture.GatedId, new HubDownloadOptions()));
        Assert.Contains("HF_TOKEN", e.Message, StringComparison.Ordinal);

        var snapshot = await Client(ReferenceServerFixture.Token).DownloadAsync(ReferenceServerFixture.GatedId, new HubDownloadOptions());
        AssertSameFiles(RepoFolder("models", "org", "gated"), snapshot);
    }

    [Fact]
    public async Task Unknown_repo_revision_fail_clearly()
    {
        _server.EnsureStarted();
        await Assert.ThrowsAnyAsync<Exception>(() => Client().DownloadAsync("org/missing", new HubDownloadOptions()));
        await Assert.ThrowsAnyAsync<Exception>(() => Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions { Revision = "no-such-branch" }));
        Assert.False(Directory.Exists(Path.Combine(_cache, "models--org--tiny", "snapshots")) &&
                     Directory.EnumerateFiles(Path.Combine(_cache, "models--org--tiny", "snapshots"), "*", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public async Task Include_and_exclude_select_files()
    {
        _server.EnsureStarted();
        var source = RepoFolder("models", "org", "tiny");
        var jsonOnly = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions { Include = ["*.json"] });
        AssertSameFiles(source, jsonOnly, ["config.json", "tokenizer.json"]);

        var noWeights = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions { Exclude = ["*.safetensors", "sub/"] });
        Assert.Equal(jsonOnly, noWeights);
        AssertSameFiles(source, noWeights, ["config.json", "tokenizer.json"]);

        var folder = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions { Include = ["sub/"] });
        AssertSameFiles(source, folder, ["config.json", "sub/file.txt", "tokenizer.json"]);
    }

    [Fact]
    public async Task Local_dir_gets_plain_files()
    {
        _server.EnsureStarted();
        var local = Path.Combine(_server.Root, "local-" + Guid.NewGuid().ToString("N"));
        var result = await Client().DownloadAsync(ReferenceServerFixture.ModelId, new HubDownloadOptions { LocalDir = local });
        Assert.Equal(Path.GetFullPath(local), Path.GetFullPath(result));
        AssertSameFiles(RepoFolder("models", "org", "tiny"), local);
        Assert.False(new FileInfo(Path.Combine(local, "model.safetensors")).LinkTarget is not null, "local_dir files should be real files, not links");
    }
}

/// <summary>A server that cuts the first GET of each LFS blob halfway: the client must retry and still end with exact bytes.</summary>
public sealed class ReferenceServerResumeTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "osprey-hubref-resume-" + Guid.NewGuid().ToString("N"));
    private Process? _process;

    public void Dispose()
    {
        ReferenceServerFixture.StopAndClean(_process, _root);
    }

    [Fact]
    public async Task Truncated_lfs_download_is_retried_to_exact_bytes()
    {
        var repo = Path.Combine(_root, "repos", "models", "org", "big", "main");
        Directory.CreateDirectory(repo);
        var weights = new byte[300_000];
        new Random(7).NextBytes(weights);
        File.WriteAllBytes(Path.Combine(repo, "model.safetensors"), weights);
        var log = Path.Combine(_root, "requests.log");
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(TestPaths.RepoRoot, "tools", "hf_reference_server.py"), "--root", Path.Combine(_root, "repos"), "--truncate_first", "--log", log })
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            _process = Process.Start(psi);
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"python3 is not on PATH ({e.Message}); this test needs it to run tools/hf_reference_server.py (.ci/run installs it).");
        }

        _process!.BeginErrorReadLine();
        var first = await _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90));
        Assert.StartsWith("listening on ", first);
        var url = first!["listening on ".Length..].Trim();

        var cache = Path.Combine(_root, "cache");
        var client = new HfHubClient(new HubClientOptions
        {
            Endpoint = url, CacheDir = cache, InitialBackoff = TimeSpan.FromMilliseconds(10), MaxBackoff = TimeSpan.FromMilliseconds(50),
        });
        var snapshot = await client.DownloadAsync("org/big", new HubDownloadOptions());
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        var blobGets = File.ReadAllLines(log).Where(l => l.StartsWith("GET\t/lfs-blobs/", StringComparison.Ordinal)).ToList();
        Assert.True(blobGets.Count >= 2, "the cut first GET should have been followed by another: " + string.Join(" | ", blobGets));
    }
}
