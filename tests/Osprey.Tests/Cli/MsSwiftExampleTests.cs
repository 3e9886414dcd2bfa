using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Cli;
using Osprey.Cli.Args;
using Osprey.Cli.Commands;
using Osprey.Tests.Cli.Commands;

namespace Osprey.Tests.Cli;

/// <summary>
/// ms-swift's published example scripts (tests/fixtures/ms-swift-examples, <c>swift</c> replaced by <c>osprey</c>) run
/// through the real <c>osprey</c> program on the demo model with two steps: the reference is ms-swift's own scripts,
/// and the test asserts each one succeeds and leaves what ms-swift's run would (a checkpoint with a PEFT adapter, a
/// merged model folder, an answer, a served model list). The substitutions applied to the arguments are the ones
/// documented in the fixtures' README.md; nothing else is changed.
/// </summary>
public sealed partial class MsSwiftExampleTests(MsSwiftExampleTests.QuickStartRun quickStart) : IClassFixture<MsSwiftExampleTests.QuickStartRun>
{
    private static string Folder => Path.Combine(TestPaths.Fixtures, "ms-swift-examples");

    private static string Dataset(string file) => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", file);

    /// <summary>ms-swift hub dataset ids and the local stand-in for each (README.md's table).</summary>
    private static readonly Dictionary<string, string> Datasets = new(StringComparer.Ordinal)
    {
        ["AI-ModelScope/alpaca-gpt4-data-zh"] = Dataset("alpaca.json"),
        ["AI-ModelScope/alpaca-gpt4-data-en"] = Dataset("alpaca.json"),
        ["swift/self-cognition"] = Dataset("self-cognition.jsonl"),
        ["hjh0119/shareAI-Llama3-DPO-zh-en-emoji"] = Dataset("preference.jsonl"),
        ["AI-ModelScope/ultrafeedback-binarized-preferences-cleaned-kto"] = Dataset("kto.jsonl"),
    };

    private static readonly HashSet<string> TrainingVerbs = ["sft", "pt", "rlhf"];

    /// <summary>
    /// The one change to a flag's value that is not a placeholder (README.md, "Known difference"): Osprey's KTO pairs each
    /// prompt with another response of the same micro-batch for its KL estimate, so it needs 2 rows per micro-batch where
    /// ms-swift pairs across the total batch.
    /// </summary>
    private static readonly Dictionary<(string Script, string Flag), string> KnownDifferences = new()
    {
        [("kto.sh", "per_device_train_batch_size")] = "2",
        [("kto.sh", "per_device_eval_batch_size")] = "2",
    };

    /// <summary>The quick-start LoRA run, done once: the later scripts use its checkpoint as their adapter.</summary>
    public sealed class QuickStartRun : IDisposable
    {
        public QuickStartRun()
        {
            var call = Assert.Single(Calls("quick-start-sft.sh"));
            Run = Execute(Substitute(call, Work.Path, adapter: null));
            Checkpoint = Directory.GetDirectories(Path.Combine(Work.Path, "output"), "checkpoint-*", SearchOption.AllDirectories).SingleOrDefault();
        }

        public TempDirectory Work { get; } = new();

        internal CliRun Run { get; }

        public string? Checkpoint { get; }

        public void Dispose() => Work.Dispose();
    }

    [Fact]
    public void QuickStartSft_TrainsAndSavesAPeftAdapter()
    {
        Assert.True(quickStart.Run.ExitCode == 0, quickStart.Run.ToString());
        Assert.NotNull(quickStart.Checkpoint);
        Assert.True(File.Exists(Path.Combine(quickStart.Checkpoint, "adapter_model.safetensors")), quickStart.Run.ToString());
        // --dataloader_num_workers is accepted with a one-line notice, not an error.
        Assert.Contains(quickStart.Run.StderrLines, line => line.StartsWith("osprey: --dataloader_num_workers has no effect here: ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("full-train.sh")]
    [InlineData("dpo-lora.sh")]
    [InlineData("kto.sh")]
    public void TrainingScripts_RunTwoStepsAndSaveACheckpoint(string script)
    {
        using var work = new TempDirectory();
        var call = Assert.Single(Calls(script));
        var args = Substitute(call, work.Path, quickStart.Checkpoint);
        foreach (var ((file, flag), value) in KnownDifferences)
            if (file == script) args[Array.IndexOf(args, "--" + flag) + 1] = value;
        var run = Execute(args);
        Assert.True(run.ExitCode == 0, run.ToString());
        var checkpoint = Assert.Single(Directory.GetDirectories(work.Path, "checkpoint-2", SearchOption.AllDirectories));
        var weights = call.Contains("full") ? "model.safetensors" : "adapter_model.safetensors";
        Assert.True(File.Exists(Path.Combine(checkpoint, weights)), run.ToString());
    }

    [Theory]
    [InlineData("quick-start-infer.sh", 2)]
    [InlineData("infer-lora.sh", 1)]
    public void InferScripts_AnswerInTheChat(string script, int commands)
    {
        Assert.NotNull(quickStart.Checkpoint);
        using var work = new TempDirectory();
        var calls = Calls(script);
        Assert.Equal(commands, calls.Count);
        foreach (var call in calls)
        {
            var run = Execute(Substitute(call, work.Path, quickStart.Checkpoint), "Where do ospreys live?\n");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.False(string.IsNullOrWhiteSpace(run.Stdout), run.ToString());
        }
    }

    [Fact]
    public void ExportMergeLora_WritesAMergedModelFolder()
    {
        Assert.NotNull(quickStart.Checkpoint);
        // merge_lora writes <adapter>-merged next to the adapter: copy the checkpoint so the shared one stays as it is.
        using var work = new TempDirectory();
        var adapter = Path.Combine(work.Path, "checkpoint-2");
        Directory.CreateDirectory(adapter);
        foreach (var file in Directory.GetFiles(quickStart.Checkpoint)) File.Copy(file, Path.Combine(adapter, Path.GetFileName(file)));
        var run = Execute(Substitute(Assert.Single(Calls("export-merge-lora.sh")), work.Path, adapter));
        Assert.True(run.ExitCode == 0, run.ToString());
        var merged = adapter + "-merged";
        Assert.True(File.Exists(Path.Combine(merged, "config.json")), run.ToString());
        Assert.NotEmpty(Directory.GetFiles(merged, "*.safetensors"));
    }

    [GeneratedRegex(@"at (http://127\.0\.0\.1:\d+)/v1")]
    private static partial Regex ServingUrl();

    [Fact]
    public async Task DeployLoraServer_ServesTheNamedAdapter()
    {
        Assert.NotNull(quickStart.Checkpoint);
        using var work = new TempDirectory();
        var args = Substitute(Assert.Single(Calls("deploy-lora-server.sh")), work.Path, quickStart.Checkpoint);
        Assert.Equal("deploy", args[0]);
        var outText = new StringWriter();
        var errText = new StringWriter();
        var stdout = TextWriter.Synchronized(outText);
        var stderr = TextWriter.Synchronized(errText);
        string Out() { lock (stdout) return outText.ToString(); }
        string Err() { lock (stderr) return errText.ToString(); }
        // The in-process entry OspreyApp uses, with a token to stop the server that Ctrl-C would stop.
        var options = new OptionReader(ParsedArgs.Parse(args[1..]), "deploy", stderr);
        using var stop = new CancellationTokenSource();
        var exit = Task.Factory.StartNew(() => new DeployCommand().Run(options, stdout, stderr, stop.Token), TaskCreationOptions.LongRunning);
        var until = DateTime.UtcNow.AddSeconds(60);
        while (!ServingUrl().IsMatch(Out()) && !exit.IsCompleted && DateTime.UtcNow < until) await Task.Delay(20);
        var url = ServingUrl().Match(Out()).Groups[1].Value;
        Assert.True(url.Length > 0, Out() + Err());
        using (var http = new HttpClient { BaseAddress = new Uri(url) })
        {
            var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement.GetProperty("data");
            Assert.Contains(models.EnumerateArray(), m => m.GetProperty("id").GetString() == "swift-lora");
        }
        stop.Cancel();
        Assert.Equal(0, await exit.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("osprey: --infer_backend vllm runs Osprey's own engine here", Err());
    }

    /// <summary>
    /// The argument lists of every <c>osprey</c> command in <paramref name="script"/>, as bash expands them: the script
    /// is sourced with <c>osprey</c> defined as a function that writes its arguments, NUL-separated, to a file per call.
    /// </summary>
    private static List<string[]> Calls(string script)
    {
        using var calls = new TempDirectory();
        var start = new ProcessStartInfo("bash")
        {
            ArgumentList = { "-c", "osprey() { n=$(ls \"$OSPREY_CALLS\" | wc -l); printf '%s\\0' \"$@\" > \"$OSPREY_CALLS/$n\"; }; source \"$1\"", "bash", Path.Combine(Folder, script) },
            RedirectStandardError = true,
            UseShellExecute = false,
            Environment = { ["OSPREY_CALLS"] = calls.Path },
        };
        using var bash = Process.Start(start)!;
        var error = bash.StandardError.ReadToEnd();
        bash.WaitForExit();
        Assert.True(bash.ExitCode == 0, $"bash could not evaluate {script}: {error}");
        return [.. Directory.GetFiles(calls.Path).OrderBy(f => int.Parse(Path.GetFileName(f)))
            .Select(f => File.ReadAllText(f).Split('\0', StringSplitOptions.None)[..^1])];
    }

    /// <summary>Applies README.md's substitutions to one command's arguments (the verb first).</summary>
    private static string[] Substitute(string[] call, string work, string? adapter)
    {
        var verb = call[0];
        var result = new List<string> { verb };
        string? flag = null;
        var hasOutput = false;
        foreach (var token in call[1..])
        {
            if (token.StartsWith("--", StringComparison.Ordinal))
            {
                flag = token[2..];
                hasOutput |= flag == "output_dir";
                result.Add(token);
                continue;
            }
            result.Add(flag switch
            {
                "model" => "demo",
                "dataset" => Datasets[token.Split('#')[0]] + (token.Contains('#') ? token[token.IndexOf('#')..] : ""),
                "adapters" => token.Contains('=') ? token[..(token.IndexOf('=') + 1)] + adapter : adapter!,
                "output_dir" => Path.Combine(work, token),
                "host" => "127.0.0.1",
                "port" => "0",
                _ => token,
            });
        }
        if (TrainingVerbs.Contains(verb))
        {
            if (!hasOutput) result.AddRange(["--output_dir", Path.Combine(work, "output")]);
            result.AddRange(["--max_steps", "2"]);
        }
        return [.. result];
    }

    private static CliRun Execute(string[] args, string stdin = "")
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exitCode = OspreyApp.Run(args, new StringReader(stdin), stdout, stderr);
        return new CliRun(exitCode, stdout.ToString(), stderr.ToString());
    }
}
