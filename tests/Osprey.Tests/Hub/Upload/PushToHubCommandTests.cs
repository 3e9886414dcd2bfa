using Osprey.Hub.Download;
using Osprey.Hub.ModelScope;
using Osprey.Tests.Cli.Commands;

namespace Osprey.Tests.Hub.Upload;

/// <summary>
/// <c>--push_to_hub</c> from the command line: <c>osprey export</c> uploads the folder it wrote to the hub named by
/// HF_ENDPOINT (byte for byte, token from <c>--hub_token</c> with no "no effect" notice), and <c>osprey sft</c> checks the
/// push flags before it trains.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class PushToHubCommandTests
{
    [Fact]
    public async Task Export_PushesTheWrittenFolder()
    {
        await using var server = await UploadHubServer.StartAsync();
        server.RequiredToken = "flag-token";
        using var dir = new TempDirectory();
        var output = Path.Combine(dir.Path, "exported");
        using var endpoint = new EnvironmentVariableScope("HF_ENDPOINT", server.Url);
        using var envToken = new EnvironmentVariableScope("HF_TOKEN", "env-token-not-used");

        var run = CliRun.Of("export", "--model", CliRun.Fixture("qwen2"), "--output_dir", output, "--device", "cpu",
            "--push_to_hub", "true", "--hub_model_id", "me/exported", "--hub_private_repo", "true", "--use_hf", "true", "--hub_token", "flag-token");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.DoesNotContain("no effect", run.Stderr); // --hub_token is a real flag
        Assert.Contains("pushed", run.Stdout);
        var repo = server.Repos["me/exported"];
        Assert.True(repo.Private);
        var files = Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(output, f)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(files, repo.Files.Keys.Order(StringComparer.Ordinal));
        foreach (var f in files) Assert.True(File.ReadAllBytes(Path.Combine(output, f)).AsSpan().SequenceEqual(repo.Files[f]), f);
        Assert.Contains(repo.ViaLfs.Keys, k => k.EndsWith(".safetensors", StringComparison.Ordinal));
        Assert.Equal("Upload exported with osprey", repo.LastMessage);
    }

    [Fact]
    public void HubToken_ReplacesTheEnvironmentTokenForDownloadsToo()
    {
        using var hf = new EnvironmentVariableScope("HF_TOKEN", "hf-env");
        using var ms = new EnvironmentVariableScope("MODELSCOPE_API_TOKEN", "ms-env");
        using (var d = (HfHubClient)HubDownloaders.Create(useHf: true, token: "flag")) Assert.Equal("flag", d.Options.Token);
        using (var d = (ModelScopeClient)HubDownloaders.Create(useHf: false, token: "flag")) Assert.Equal("flag", d.Options.Token);
        using (var d = (HfHubClient)HubDownloaders.Create(useHf: true)) Assert.Equal("hf-env", d.Options.Token);
        using (var d = (ModelScopeClient)HubDownloaders.Create(useHf: false, offline: true)) Assert.Equal(("ms-env", true), (d.Options.Token, d.Options.Offline));
    }

    [Fact]
    public void HubToken_IsNeverWrittenToArgsJson()
    {
        // args.json is copied into every checkpoint, and a checkpoint is what --push_to_hub uploads.
        var sft = new Osprey.Training.SftOptions { Model = new() { Model = "demo", HubToken = "hf_secret" }, Trainer = new() { Push = new() { PushToHub = true, HubModelId = "me/x" } } };
        var json = Osprey.Options.OptionSet.For<Osprey.Training.SftOptions>().ToJson(sft).ToJsonString();
        Assert.DoesNotContain("hf_secret", json);
        Assert.DoesNotContain("hub_token", json);
        Assert.Contains("\"hub_model_id\":\"me/x\"", json);
    }

    [Fact]
    public void Sft_ChecksThePushFlagsBeforeTraining()
    {
        using var dir = new TempDirectory();
        var data = Path.Combine(dir.Path, "d.jsonl");
        File.WriteAllText(data, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n");
        using var token = new EnvironmentVariableScope("MODELSCOPE_API_TOKEN", null);
        using var useHf = new EnvironmentVariableScope("USE_HF", null);

        var noId = CliRun.Of("sft", "--model", "demo", "--dataset", data, "--output_dir", dir.Path, "--push_to_hub", "true");
        Assert.NotEqual(0, noId.ExitCode);
        Assert.Contains("--hub_model_id", noId.Stderr);

        var noToken = CliRun.Of("sft", "--model", "demo", "--dataset", data, "--output_dir", dir.Path, "--push_to_hub", "true", "--hub_model_id", "me/run");
        Assert.NotEqual(0, noToken.ExitCode);
        Assert.Contains("MODELSCOPE_API_TOKEN", noToken.Stderr);
        Assert.Empty(Directory.GetDirectories(dir.Path)); // nothing trained, no run folder
    }
}
