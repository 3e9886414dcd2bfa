using Osprey.Cli;
using Osprey.Hub;
using Osprey.Tests.Cli.Commands;

namespace Osprey.Tests.Hub;

/// <summary>Finding already-downloaded models in Hugging Face and ModelScope cache layouts.</summary>
[Collection(nameof(ProcessEnvironmentCollection))] // one test sets HF_HUB_CACHE
public sealed class HubCacheTests
{
    static string MakeHfRepo(string root, string repoId, string hash, bool writeRef = true)
    {
        var repo = Path.Combine(root, "models--" + repoId.Replace("/", "--"));
        var snap = Path.Combine(repo, "snapshots", hash);
        Directory.CreateDirectory(snap);
        if (writeRef)
        {
            Directory.CreateDirectory(Path.Combine(repo, "refs"));
            File.WriteAllText(Path.Combine(repo, "refs", "main"), hash + "\n");
        }
        return snap;
    }

    [Theory]
    [InlineData("Qwen/Qwen2.5-0.5B-Instruct", true)]
    [InlineData("meta-llama/Llama-3.1-8B", true)]
    [InlineData("org/name_with.dots", true)]
    [InlineData("just-a-name", false)]
    [InlineData("/abs/path", false)]
    [InlineData("a/b/c", false)]
    [InlineData("../x", false)]
    public void RepoIdsAreRecognised(string text, bool expected) => Assert.Equal(expected, HubCache.IsRepoId(text));

    [Fact]
    public void RefsMainPointsAtTheSnapshot()
    {
        using var dir = new TempDirectory();
        MakeHfRepo(dir.Path, "Qwen/Tiny", "aaaa", writeRef: false);
        var wanted = MakeHfRepo(dir.Path, "Qwen/Tiny", "bbbb");
        Assert.Equal(wanted, HubCache.FindHuggingFace("Qwen/Tiny", [dir.Path]));
        Assert.Equal(Path.Combine(dir.Path, "models--Qwen--Tiny", "snapshots", "aaaa"), HubCache.FindHuggingFace("Qwen/Tiny", [dir.Path], "aaaa"));
        Assert.Null(HubCache.FindHuggingFace("Qwen/Other", [dir.Path]));
    }

    [Fact]
    public void ASingleSnapshotWithoutRefsIsUsed()
    {
        using var dir = new TempDirectory();
        var only = MakeHfRepo(dir.Path, "a/b", "cafe", writeRef: false);
        Assert.Equal(only, HubCache.FindHuggingFace("a/b", ["/nonexistent", dir.Path]));
    }

    [Fact]
    public void ASingleSnapshotOfAnUnfinishedDownloadIsNotUsed()
    {
        // refs/ exists (a downloader manages the repo) but holds no ref for main: the download never finished.
        using var dir = new TempDirectory();
        var only = Path.Combine(dir.Path, "models--a--b", "snapshots", "abc");
        Directory.CreateDirectory(only);
        Directory.CreateDirectory(Path.Combine(dir.Path, "models--a--b", "refs"));
        Assert.Null(HubCache.FindHuggingFace("a/b", [dir.Path]));
        File.WriteAllText(Path.Combine(dir.Path, "models--a--b", "refs", "main"), "abc");
        Assert.Equal(only, HubCache.FindHuggingFace("a/b", [dir.Path]));
    }

    [Fact]
    public void ModelScopeLayoutIsFoundWithEscapedDots()
    {
        using var dir = new TempDirectory();
        var model = Path.Combine(dir.Path, "Qwen", "Qwen2___5-0___5B");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"), "{}");
        Assert.Equal(model, HubCache.FindModelScope("Qwen/Qwen2.5-0.5B", [dir.Path]));
        Assert.Null(HubCache.FindModelScope("Qwen/Other", [dir.Path]));
    }

    [Fact]
    public void InferFindsAModelInTheHuggingFaceCacheByItsId()
    {
        using var dir = new TempDirectory();
        var snap = MakeHfRepo(dir.Path, "tiny/llama3", "0123abcd");
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Fixtures, "parity", "llama3")))
            File.Copy(f, Path.Combine(snap, Path.GetFileName(f)));
        var previous = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
        var previousOffline = Environment.GetEnvironmentVariable("HF_HUB_OFFLINE");
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", dir.Path);
            // Cache only: a missing id is then an immediate error instead of a download attempt.
            Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            var code = OspreyApp.Run(["infer", "--model", "tiny/llama3", "--device", "cpu", "--input_ids", "5 6 7", "--max_new_tokens", "4"], stdout, stderr);
            Assert.True(code == 0, stderr.ToString());
            Assert.StartsWith("[0] ", stdout.ToString());

            code = OspreyApp.Run(["infer", "--model", "tiny/absent", "--device", "cpu"], stdout, stderr);
            Assert.Equal(2, code);
            Assert.Contains("tiny/absent", stderr.ToString());
            Assert.Contains(dir.Path, stderr.ToString());
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", previous);
            Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", previousOffline);
        }
    }
}
