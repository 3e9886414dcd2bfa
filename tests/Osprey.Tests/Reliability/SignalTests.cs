using System.Diagnostics;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Training;

namespace Osprey.Tests.Reliability;

/// <summary>
/// SIGTERM (job schedulers, <c>docker stop</c>) ends a training run the way Ctrl-C does: the step finishes, a
/// checkpoint is saved and the process exits 130. Runs the real <c>osprey</c> program as a child process and signals it.
/// </summary>
public sealed class SignalTests
{
    static string Memorize => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl");

    [Fact]
    public async Task SigtermDuringSftSavesACheckpointAndExits130()
    {
        if (OperatingSystem.IsWindows()) return; // no SIGTERM there
        using var temp = new TempDirectory();
        var run = temp.File("run");
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] args = ["sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", TestDemoModel.Folder, "--dataset", Memorize,
            "--max_steps", "100000", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--logging_steps", "1",
            "--save_steps", "100000", "--output_dir", run, "--add_version", "false"];
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "osprey.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            // Wait until a step is logged: the run is then inside its training loop.
            var log = Path.Combine(run, "logging.jsonl");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!(File.Exists(log) && ReadShared(log).Contains("\"loss\"", StringComparison.Ordinal)))
            {
                if (process.HasExited) Assert.Fail($"osprey sft ended before a step: {await stderr}");
                Assert.True(DateTime.UtcNow < deadline, "no step logged within 60 s");
                await Task.Delay(50);
            }
            // Process.Kill sends SIGKILL; the scheduler's signal is SIGTERM.
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                kill.WaitForExit();
                Assert.Equal(0, kill.ExitCode);
            }
            Assert.True(process.WaitForExit(60_000), "osprey sft did not stop within 60 s of SIGTERM");
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        var (outText, errText) = (await stdout, await stderr);
        var output = $"--- stdout\n{outText}--- stderr\n{errText}";
        Assert.True(process.ExitCode == 130, $"exit {process.ExitCode}\n{output}");
        var checkpoint = Directory.GetDirectories(run, "checkpoint-*").Single();
        Assert.DoesNotContain(".tmp", checkpoint, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")), output);
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_config.json")), output);
        Assert.Contains($"last_model_checkpoint: {checkpoint}", outText);

        // The checkpoint resumes: two more steps from where SIGTERM stopped.
        var step = long.Parse(Path.GetFileName(checkpoint)["checkpoint-".Length..], System.Globalization.CultureInfo.InvariantCulture);
        var resumed = CliRun.Of(["sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", TestDemoModel.Folder, "--dataset", Memorize,
            "--max_steps", (step + 2).ToString(System.Globalization.CultureInfo.InvariantCulture), "--per_device_train_batch_size", "1",
            "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--output_dir", temp.File("ignored"), "--resume_from_checkpoint", checkpoint]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Contains("resuming", resumed.Stderr);
        Assert.True(Directory.Exists(Path.Combine(run, $"checkpoint-{step + 2}")), resumed.ToString());
    }

    // The child writes the log while we read it.
    static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd();
    }
}
