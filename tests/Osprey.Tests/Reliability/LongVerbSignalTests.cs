using System.Globalization;
using System.Security.Cryptography;
using Osprey.Hub.Download;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Hub.Download;
using Osprey.Tests.Training;

namespace Osprey.Tests.Reliability;

/// <summary>
/// SIGTERM to the long verbs other than sft (covered by <see cref="SignalTests"/>): <c>osprey pt</c>, <c>osprey rlhf</c>
/// and <c>osprey download</c> stop cleanly with exit 130, leave what a later run resumes from (a checkpoint, a partial
/// <c>.incomplete</c> file), and resume. Each runs the real program as a child process and signals it with kill(1).
/// </summary>
public sealed class LongVerbSignalTests
{
    static string Data(string name) => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", name);

    [Theory]
    [InlineData("pt", "pretrain.jsonl")]
    [InlineData("rlhf", "preference.jsonl")]
    public async Task SigtermDuringTrainingSavesACheckpointExits130AndResumes(string verb, string dataset)
    {
        if (OperatingSystem.IsWindows()) return; // no SIGTERM there
        using var temp = new TempDirectory();
        var run = temp.File("run");
        string[] Args(long maxSteps, string output) =>
            [verb, .. verb == "rlhf" ? new[] { "--rlhf_type", "dpo" } : [], "--device", "cpu", "--load_from_cache_file", "false",
             "--model", TestDemoModel.Folder, "--dataset", Data(dataset), "--max_steps", maxSteps.ToString(CultureInfo.InvariantCulture),
             "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--save_steps", "100000",
             "--output_dir", output, "--add_version", "false"];
        var log = Path.Combine(run, "logging.jsonl");
        using (var child = OspreyChild.Start(Args(100_000, run)))
        {
            // A logged loss: the run is inside its training loop.
            await child.WaitUntil(() => File.Exists(log) && ReadShared(log).Contains("\"loss\"", StringComparison.Ordinal), "a step was logged");
            child.Signal("TERM");
            var (exit, stdout, stderr) = await child.Exit();
            Assert.True(exit == 130, $"exit {exit}\n--- stdout\n{stdout}--- stderr\n{stderr}");
            var checkpoint = Directory.GetDirectories(run, "checkpoint-*").Single();
            Assert.DoesNotContain(".tmp", checkpoint, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")), stderr);
            Assert.True(File.Exists(Path.Combine(checkpoint, "trainer_state.json")), stderr);
            Assert.Contains($"last_model_checkpoint: {checkpoint}", stdout);

            // Two more steps from where SIGTERM stopped, in the same run folder.
            var step = long.Parse(Path.GetFileName(checkpoint)["checkpoint-".Length..], CultureInfo.InvariantCulture);
            var resumed = CliRun.Of([.. Args(step + 2, temp.File("ignored")), "--resume_from_checkpoint", checkpoint]);
            Assert.True(resumed.ExitCode == 0, resumed.ToString());
            Assert.Contains("resuming", resumed.Stderr);
            Assert.True(Directory.Exists(Path.Combine(run, $"checkpoint-{step + 2}")), resumed.ToString());
        }
    }

    /// <summary>
    /// <c>osprey download</c> against the tests' local hub (<see cref="FakeHubServer"/>, 127.0.0.1): the weights'
    /// first answer is cut after 100,000 bytes and the retry is held back, so SIGTERM lands with a partial
    /// <c>.incomplete</c> blob on disk. The download stops with exit 130 and keeps it; the next run asks only for the
    /// rest (a Range request from byte 100,000) and the file's sha256 matches the repo's.
    /// </summary>
    [Fact]
    public async Task SigtermDuringDownloadKeepsThePartialFileExits130AndResumes()
    {
        if (OperatingSystem.IsWindows()) return;
        await using var server = new FakeHubServer();
        var repo = server.Add(FakeHubServer.ModelRepo("test-org/signalled", 300_000));
        var weights = repo.File("model.safetensors");
        var cdnGets = 0;
        server.OnRequest = r => r.Method == "GET" && r.Path.StartsWith("/cdn/", StringComparison.Ordinal)
            ? Interlocked.Increment(ref cdnGets) switch
            {
                1 => new Fault.CutAfter(100_000),
                2 => new Fault.Delay(TimeSpan.FromSeconds(30)),
                _ => null,
            }
            : null;
        using var temp = new TempDirectory();
        var cache = temp.File("hub");
        var environment = new Dictionary<string, string> { ["HF_ENDPOINT"] = server.Url, ["HF_HUB_CACHE"] = cache, ["HF_HUB_OFFLINE"] = "0" };
        string[] args = ["download", "--model", repo.Id, "--use_hf", "true", "--max_workers", "1"];
        var partial = Path.Combine(cache, "models--test-org--signalled", "blobs", weights.Sha256 + ".incomplete");

        using (var child = OspreyChild.Start(args, environment))
        {
            await child.WaitUntil(() => Volatile.Read(ref cdnGets) >= 2, "the weights were asked for again after the cut");
            child.Signal("TERM");
            var (exit, stdout, stderr) = await child.Exit();
            var output = $"exit {exit}\n--- stdout\n{stdout}--- stderr\n{stderr}";
            Assert.True(exit == 130, output);
            Assert.Contains("cancelled; files finished so far are kept", stderr);
            Assert.True(File.Exists(partial), output);
            Assert.Equal(100_000, new FileInfo(partial).Length);
        }

        using (var again = OspreyChild.Start(args, environment))
        {
            var (exit, stdout, stderr) = await again.Exit();
            Assert.True(exit == 0, $"exit {exit}\n--- stdout\n{stdout}--- stderr\n{stderr}");
            var snapshot = stdout.Trim().Split('\n')[^1];
            var bytes = File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")); // a link into blobs/, as huggingface_hub makes
            Assert.Equal(weights.Content.Length, bytes.Length);
            Assert.Equal(weights.Sha256, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        }
        Assert.False(File.Exists(partial));
        var last = server.Requests.Last(r => r.Method == "GET" && r.Path.StartsWith("/cdn/", StringComparison.Ordinal));
        Assert.Equal("bytes=100000-", last.Header("range"));
    }

    // The child writes the log while we read it.
    static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd();
    }
}
