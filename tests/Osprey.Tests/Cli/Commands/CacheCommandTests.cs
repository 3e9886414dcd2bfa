using Osprey.Hub;
using Osprey.Hub.Download;

namespace Osprey.Tests.Cli.Commands;

/// <summary>
/// <c>osprey cache list|rm</c> on synthetic cache folders: a Hugging Face repo with two revisions sharing a blob, a
/// dataset repo, and a ModelScope model folder; HF_HOME, MODELSCOPE_CACHE and HOME point at a temp folder.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class CacheCommandTests : IDisposable
{
    private const string CommitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private const string CommitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    private readonly TempDirectory _dir = new();
    private readonly List<EnvironmentVariableScope> _env = [];

    public CacheCommandTests()
    {
        _env.Add(new EnvironmentVariableScope("HF_HOME", Path.Combine(_dir.Path, "hf")));
        _env.Add(new EnvironmentVariableScope("HF_HUB_CACHE", null));
        _env.Add(new EnvironmentVariableScope("HUGGINGFACE_HUB_CACHE", null));
        _env.Add(new EnvironmentVariableScope("XDG_CACHE_HOME", Path.Combine(_dir.Path, "xdg")));
        _env.Add(new EnvironmentVariableScope("HOME", Path.Combine(_dir.Path, "home")));
        _env.Add(new EnvironmentVariableScope("MODELSCOPE_CACHE", Path.Combine(_dir.Path, "ms")));
    }

    public void Dispose()
    {
        for (var i = _env.Count - 1; i >= 0; i--) _env[i].Dispose();
        _dir.Dispose();
    }

    private string HfRepo => Path.Combine(_dir.Path, "hf", "hub", "models--org--shared");

    private static void Blob(string repo, string name, int size) =>
        File.WriteAllBytes(Path.Combine(Directory.CreateDirectory(Path.Combine(repo, "blobs")).FullName, name), new byte[size]);

    private static void Link(string repo, string commit, string path, string blob)
    {
        var file = Path.Combine(repo, "snapshots", commit, path);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.CreateSymbolicLink(file, HfCacheLayout.RelativeBlobTarget(path, blob));
    }

    private static void Ref(string repo, string name, string commit)
    {
        var file = Path.Combine(repo, "refs", name);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, commit);
    }

    /// <summary>
    /// models--org--shared: revision A (ref v1) = config c1 (100 B) + weights w (10,000 B); revision B (ref main) =
    /// config c2 (200 B) + the same weights. A dataset repo (50 B) and a ModelScope model (1,000 B + 24 B).
    /// </summary>
    private void MakeCaches()
    {
        Blob(HfRepo, "c1", 100);
        Blob(HfRepo, "c2", 200);
        Blob(HfRepo, "w", 10_000);
        Link(HfRepo, CommitA, "config.json", "c1");
        Link(HfRepo, CommitA, "sub/model.safetensors", "w");
        Link(HfRepo, CommitB, "config.json", "c2");
        Link(HfRepo, CommitB, "sub/model.safetensors", "w");
        Ref(HfRepo, "v1", CommitA);
        Ref(HfRepo, "main", CommitB);
        var data = Path.Combine(_dir.Path, "hf", "hub", "datasets--org--data");
        Blob(data, "d", 50);
        Link(data, CommitA, "train.jsonl", "d");
        Ref(data, "main", CommitA);
        var ms = Directory.CreateDirectory(Path.Combine(_dir.Path, "ms", "models", "msorg", "Tiny___Model")).FullName;
        File.WriteAllBytes(Path.Combine(ms, "model.safetensors"), new byte[1000]);
        File.WriteAllBytes(Path.Combine(ms, "config.json"), new byte[24]);
        Directory.CreateDirectory(Path.Combine(_dir.Path, "ms", "models", "._____temp"));
    }

    [Fact]
    public void ScanCountsSharedBlobsOnce()
    {
        MakeCaches();
        var repos = CacheInventory.ScanEnvironment();

        Assert.Equal(3, repos.Count);
        var hf = repos.Single(r => r.RepoId == "org/shared");
        Assert.Equal(("hf", HubRepoType.Model), (hf.Hub, hf.Type));
        Assert.Equal(10_300 + 80, hf.SizeOnDisk); // blobs once, plus the two 40-byte refs; links count nothing
        Assert.Equal([CommitA, CommitB], hf.Snapshots);
        Assert.Equal(CommitB, hf.Refs["main"]);
        Assert.Equal(CommitA, hf.Refs["v1"]);
        var data = repos.Single(r => r.RepoId == "org/data");
        Assert.Equal((HubRepoType.Dataset, 90L), (data.Type, data.SizeOnDisk));
        var ms = repos.Single(r => r.Hub == "modelscope");
        Assert.Equal(("msorg/Tiny.Model", HubRepoType.Model, 1024L), (ms.RepoId, ms.Type, ms.SizeOnDisk));
    }

    [Fact]
    public void ListPrintsATable()
    {
        MakeCaches();
        var run = CliRun.Of("cache", "list");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(["hub", "type", "repo", "id", "revisions", "snapshots", "size", "path"], run.StdoutLines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var shared = run.StdoutLines.Single(l => l.Contains("org/shared", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["hf", "model", "org/shared", "main,v1", "2", "10.4", "KB", HfRepo], shared);
        var ms = run.StdoutLines.Single(l => l.Contains("msorg/Tiny.Model", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["modelscope", "model", "msorg/Tiny.Model", "-", "-", "1.0", "KB"], ms[..7]);
        Assert.Contains(run.StdoutLines, l => l.Contains("datasets--org--data", StringComparison.Ordinal) && l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is ["hf", "dataset", "org/data", "main", "1", "90", "B", ..]);
        Assert.Equal("3 repositories, 11.5 KB on disk.", run.StdoutLines[^1]);
    }

    [Fact]
    public void ListOnEmptyCachesSaysSo()
    {
        var run = CliRun.Of("cache", "list");
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("No repositories in the hub caches", Assert.Single(run.StdoutLines));
    }

    [Fact]
    public void RemovingARevisionKeepsSharedBlobs()
    {
        MakeCaches();

        var dry = CliRun.Of("cache", "rm", "org/shared", "--revision", "v1", "--dry_run", "true");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.StartsWith("Would remove hf model org/shared: revision v1", dry.StdoutLines[0]);
        Assert.Equal("Dry run: nothing was removed.", dry.StdoutLines[^1]);
        Assert.True(Directory.Exists(Path.Combine(HfRepo, "snapshots", CommitA)));

        var run = CliRun.Of("cache", "rm", "org/shared", "--revision", "v1");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("Removed hf model org/shared: revision v1", run.StdoutLines[0]);
        Assert.Contains("freeing 100 B", run.StdoutLines[0]);
        Assert.Contains("  " + Path.Combine(HfRepo, "blobs", "c1"), run.StdoutLines);
        Assert.False(Directory.Exists(Path.Combine(HfRepo, "snapshots", CommitA)));
        Assert.False(File.Exists(Path.Combine(HfRepo, "refs", "v1")));
        Assert.False(File.Exists(Path.Combine(HfRepo, "blobs", "c1")));
        Assert.True(File.Exists(Path.Combine(HfRepo, "blobs", "w")));
        Assert.True(File.Exists(Path.Combine(HfRepo, "blobs", "c2")));
        Assert.Equal(new byte[10_000], File.ReadAllBytes(Path.Combine(HfRepo, "snapshots", CommitB, "sub", "model.safetensors")));
        Assert.Equal(Path.Combine(HfRepo, "snapshots", CommitB), HubCache.FindHuggingFace("org/shared", HubCache.HuggingFaceRoots()));
        Assert.Equal(10_200 + 40, CacheInventory.ScanEnvironment().Single(r => r.RepoId == "org/shared").SizeOnDisk);

        // The last revision takes the whole repository with it.
        var last = CliRun.Of("cache", "rm", "org/shared", "--revision", CommitB);
        Assert.True(last.ExitCode == 0, last.ToString());
        Assert.Contains("its only snapshot, so the whole repository", last.StdoutLines[0]);
        Assert.False(Directory.Exists(HfRepo));
    }

    [Fact]
    public void RemovingWholeReposFromEachHub()
    {
        MakeCaches();

        var hf = CliRun.Of("cache", "rm", "org/shared", "--use_hf", "true");
        Assert.True(hf.ExitCode == 0, hf.ToString());
        Assert.Contains("the whole repository (2 snapshot(s), 10.4 KB), freeing 10.4 KB", hf.StdoutLines[0]);
        Assert.False(Directory.Exists(HfRepo));

        var ms = CliRun.Of("cache", "rm", "msorg/Tiny.Model");
        Assert.True(ms.ExitCode == 0, ms.ToString());
        Assert.StartsWith("Removed modelscope model msorg/Tiny.Model: the whole repository", ms.StdoutLines[0]);
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "ms", "models", "msorg", "Tiny___Model")));

        var data = CliRun.Of("cache", "rm", "org/data", "--dataset");
        Assert.True(data.ExitCode == 0, data.ToString());
        Assert.Empty(CacheInventory.ScanEnvironment());
    }

    [Theory]
    [InlineData("org/missing", null, "no model repository of that id in the hub caches")]
    [InlineData("org/data", null, "pass --dataset for a dataset")]
    [InlineData("org/shared", "v9", "has no such ref or snapshot")]
    [InlineData("msorg/Tiny.Model", "main", "the ModelScope cache keeps one copy per repository")]
    [InlineData("bad id", null, "not a hub repository id")]
    public void RemoveErrorsAreOneLine(string id, string? revision, string message)
    {
        MakeCaches();
        string[] args = revision is null ? ["cache", "rm", id] : ["cache", "rm", id, "--revision", revision];
        var run = CliRun.Of(args);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, Assert.Single(run.StderrLines));
        Assert.Equal(3, CacheInventory.ScanEnvironment().Count);
    }

    [Fact]
    public void WithoutAnActionItSaysWhatItNeeds()
    {
        var run = CliRun.Of("cache");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("'list'", Assert.Single(run.StderrLines));
    }
}
