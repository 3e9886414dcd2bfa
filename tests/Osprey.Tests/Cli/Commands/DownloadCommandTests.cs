using System.Security.Cryptography;
using System.Text;
using Osprey.Hub.Download;
using Osprey.Tests.Hub.Download;

namespace Osprey.Tests.Cli.Commands;

/// <summary>
/// <c>osprey download</c> and download-on-first-use of <c>--model org/name</c>, against the in-test Hugging Face hub on
/// 127.0.0.1, with HF_ENDPOINT and the cache variables pointed at it and at a temp folder.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class DownloadCommandTests : IAsyncLifetime
{
    private readonly FakeHubServer _server = new();
    private readonly TempDirectory _dir = new();
    private readonly List<EnvironmentVariableScope> _env = [];
    private FakeRepo _repo = null!;

    private string Cache => Path.Combine(_dir.Path, "hf", "hub");

    public Task InitializeAsync()
    {
        _repo = _server.Add(FakeHubServer.ModelRepo("test-org/tiny-model", 300_000));
        _env.Add(new EnvironmentVariableScope("HF_ENDPOINT", _server.Url));
        _env.Add(new EnvironmentVariableScope("HF_HOME", Path.Combine(_dir.Path, "hf")));
        _env.Add(new EnvironmentVariableScope("HF_HUB_CACHE", null));
        _env.Add(new EnvironmentVariableScope("HUGGINGFACE_HUB_CACHE", null));
        _env.Add(new EnvironmentVariableScope("MODELSCOPE_CACHE", Path.Combine(_dir.Path, "modelscope")));
        _env.Add(new EnvironmentVariableScope("HF_HUB_OFFLINE", null));
        _env.Add(new EnvironmentVariableScope("MODELSCOPE_OFFLINE", null));
        _env.Add(new EnvironmentVariableScope("HF_TOKEN", null));
        _env.Add(new EnvironmentVariableScope("USE_HF", null));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        for (var i = _env.Count - 1; i >= 0; i--) _env[i].Dispose();
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private string Snapshot(FakeRepo repo, string kind = "models") =>
        Path.Combine(Cache, $"{kind}--{repo.Id.Replace("/", "--")}", "snapshots", repo.Commit);

    [Fact]
    public void DownloadsIntoTheHubCacheAndPrintsTheSnapshotLast()
    {
        var run = CliRun.Of("download", "--model", _repo.Id, "--use_hf", "true");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(Snapshot(_repo), run.StdoutLines[^1]);
        foreach (var f in _repo.Files)
            Assert.Equal(f.Content, File.ReadAllBytes(Path.Combine(Snapshot(_repo), f.Path)));
        Assert.Contains("Downloading model test-org/tiny-model (revision main) from Hugging Face", run.Stderr);
        var progress = run.StderrLines[^1];
        Assert.StartsWith("Download: 100%|", progress);
        Assert.Contains("MB/s", progress);
        Assert.Matches(@"0\.30/0\.30 MB", progress);
        Assert.Equal(_repo.Commit, File.ReadAllText(Path.Combine(Cache, "models--test-org--tiny-model", "refs", "main")).Trim());
    }

    [Fact]
    public void UseHfFromTheEnvironmentIncludeAndExcludeAndLocalDir()
    {
        using var useHf = new EnvironmentVariableScope("USE_HF", "1");
        var local = Path.Combine(_dir.Path, "local");

        var run = CliRun.Of("download", "--model", _repo.Id, "--include", "*.json", "tokenizer/*", "--exclude", "config.json", "--local_dir", local, "--max_workers", "2");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(Path.GetFullPath(local), run.StdoutLines[^1]);
        Assert.True(File.Exists(Path.Combine(local, "tokenizer", "vocab.json")));
        Assert.False(File.Exists(Path.Combine(local, "config.json")));
        Assert.False(File.Exists(Path.Combine(local, "model.safetensors")));
        Assert.False(Directory.Exists(Cache));
    }

    [Fact]
    public void DownloadsADataset()
    {
        var data = _server.Add(FakeHubServer.ModelRepo("test-org/some-data", 1000, HubRepoType.Dataset, seed: 2));

        var run = CliRun.Of("download", "--dataset", data.Id, "--use_hf", "true");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(Snapshot(data, "datasets"), run.StdoutLines[^1]);
        Assert.True(File.Exists(Path.Combine(Snapshot(data, "datasets"), "config.json")));
    }

    [Fact]
    public void OfflineUsesTheCacheOrSaysItIsMissing()
    {
        var missing = CliRun.Of("download", "--model", _repo.Id, "--use_hf", "true", "--offline", "true");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("is not in the hub cache", missing.StderrLines[^1]);
        Assert.Empty(_server.Requests);

        Assert.Equal(0, CliRun.Of("download", "--model", _repo.Id, "--use_hf", "true").ExitCode);
        var seen = _server.Requests.Count;
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", "1");
        var cached = CliRun.Of("download", "--model", _repo.Id, "--use_hf", "true");
        Assert.True(cached.ExitCode == 0, cached.ToString());
        Assert.Equal(Snapshot(_repo), cached.StdoutLines[^1]);
        Assert.Equal(seen, _server.Requests.Count);
    }

    [Theory]
    [InlineData("not-an-id", "is not a hub repository id")]
    [InlineData("a/b/c", "is not a hub repository id")]
    public void BadIdsAreOneLineErrors(string id, string message)
    {
        var run = CliRun.Of("download", "--model", id, "--use_hf", "true");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, Assert.Single(run.StderrLines));
    }

    [Fact]
    public void ModelAndDatasetTogetherOrNeitherAreErrors()
    {
        var both = CliRun.Of("download", "--model", "a/b", "--dataset", "c/d");
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("not both", Assert.Single(both.StderrLines));
        var neither = CliRun.Of("download", "--use_hf", "true");
        Assert.Equal(2, neither.ExitCode);
        Assert.Contains("needs --model ORG/NAME or --dataset ORG/NAME", Assert.Single(neither.StderrLines));
    }

    [Fact]
    public void AGatedRepoSaysToSetHfToken()
    {
        _server.RequiredToken = "hf_secret";

        var run = CliRun.Of("download", "--model", _repo.Id, "--use_hf", "true");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("is gated or private", run.StderrLines[^1]);
        Assert.Contains("HF_TOKEN", run.StderrLines[^1]);
        Assert.Empty(run.Stdout);

        using var token = new EnvironmentVariableScope("HF_TOKEN", "hf_secret");
        Assert.Equal(0, CliRun.Of("download", "--model", _repo.Id, "--use_hf", "true").ExitCode);
    }

    [Fact]
    public void AMissingRepoIsAOneLineError()
    {
        var run = CliRun.Of("download", "--model", "test-org/nope", "--use_hf", "true");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("test-org/nope", run.StderrLines[^1]);
        Assert.Empty(run.Stdout);
    }

    // ---------------------------------------------------------------- download on first use

    private FakeRepo AddQwen2Fixture(string id)
    {
        var folder = CliRun.Fixture("qwen2");
        string[] names = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "model.safetensors"];
        var files = names.Select(n => new FakeFile(n, File.ReadAllBytes(Path.Combine(folder, n)), n.EndsWith(".safetensors", StringComparison.Ordinal))).ToArray();
        var commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(id)));
        return _server.Add(new FakeRepo(id, HubRepoType.Model, commit, files));
    }

    // Loads the model straight from a Hugging Face cache made of symbolic links (snapshots/ → blobs/).
    [Fact]
    public void InferDownloadsAHubIdOnFirstUseThenUsesTheCache()
    {
        var repo = AddQwen2Fixture("test-org/qwen2-tiny");
        string[] args = ["infer", "--model", repo.Id, "--use_hf", "true", "--device", "cpu", "--input_ids", "1 2 3", "--max_new_tokens", "2"];

        var first = CliRun.Of(args);

        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.True(File.Exists(Path.Combine(Snapshot(repo), "model.safetensors")));
        Assert.Matches(@"^\[0\] \d+", first.StdoutLines[^1]);
        var seen = _server.Requests.Count;
        Assert.True(seen > 0);

        // The second run finds the snapshot in the cache, offline or not, and asks the hub nothing.
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", "1");
        var second = CliRun.Of(args);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(first.StdoutLines[^1], second.StdoutLines[^1]);
        Assert.Equal(seen, _server.Requests.Count);
    }

    [Fact]
    public void SftTrainsAHubModelOnAHubDatasetBothDownloadedOnFirstUse()
    {
        var model = AddQwen2Fixture("test-org/qwen2-train");
        var data = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl"));
        var dataset = _server.Add(new FakeRepo("test-org/memorize", HubRepoType.Dataset, new string('d', 40), [new FakeFile("train.jsonl", data, false)]));
        using var useHf = new EnvironmentVariableScope("USE_HF", "1"); // datasets take the hub from the environment
        using var output = new TempDirectory();

        var run = CliRun.Of("sft", "--model", model.Id, "--dataset", dataset.Id, "--device", "cpu", "--max_steps", "2",
            "--gradient_accumulation_steps", "1", "--load_from_cache_file", "false", "--output_dir", output.Path, "--add_version", "false");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(File.Exists(Path.Combine(Snapshot(model), "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(Snapshot(dataset, "datasets"), "train.jsonl")));
        var checkpoint = Path.Combine(output.Path, "checkpoint-2");
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")));
        var infer = CliRun.Of("infer", "--adapters", checkpoint, "--use_hf", "true", "--device", "cpu", "--input_ids", "1 2 3", "--max_new_tokens", "2");
        Assert.True(infer.ExitCode == 0, infer.ToString());
    }

    [Fact]
    public void OfflineAHubIdMissingFromTheCachesIsAClearError()
    {
        var repo = AddQwen2Fixture("test-org/qwen2-offline");
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", "1");

        var run = CliRun.Of("infer", "--model", repo.Id, "--use_hf", "true", "--device", "cpu", "--input_ids", "1 2 3");

        Assert.Equal(2, run.ExitCode);
        var line = Assert.Single(run.StderrLines);
        Assert.Contains("is not in the local hub caches", line);
        Assert.Contains("osprey download --model test-org/qwen2-offline", line);
        Assert.Empty(_server.Requests);
    }

    [Fact]
    public void UseHfIsAcceptedByModelCommands()
    {
        var run = CliRun.Of("export", "--help");
        Assert.Contains("--use_hf B", run.Stdout);
        Assert.Contains("downloaded on first use", run.Stdout);
    }
}
