using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Cli.Args;
using Osprey.Cli.Commands;
using Osprey.Tests.Cli.Commands;

namespace Osprey.Tests.Server;

/// <summary><c>osprey deploy</c> / <c>osprey app</c>: flag mistakes are one-sentence errors naming the flag; a run serves until stopped.</summary>
public sealed partial class DeployCommandTests
{
    public static TheoryData<string[], string> BadFlags() => new()
    {
        { ["--model", CliRun.Fixture("qwen2"), "--infer_backend", "tgi"], "--infer_backend tgi" },
        { ["--model", CliRun.Fixture("qwen2"), "--port", "70000"], "--port" },
        { ["--model", CliRun.Fixture("qwen2"), "--max_batch_size", "0"], "--max_batch_size" },
        { ["--model", CliRun.Fixture("qwen2"), "--max_model_len", "1"], "--max_model_len" },
        { ["--model", CliRun.Fixture("qwen2"), "--api_key", " "], "--api_key" },
        { ["--model", CliRun.Fixture("qwen2"), "--adapters", "=somewhere"], "--adapters" },
        { ["--model", CliRun.Fixture("qwen2"), "--adapters", "a=/no/such/osprey/adapter"], "--adapters" },
        { ["--model", CliRun.Fixture("qwen2"), "--no_such_flag", "1"], "--no_such_flag" },
    };

    [Theory]
    [MemberData(nameof(BadFlags))]
    public void FlagMistakesAreOneSentenceUserErrors(string[] args, string names)
    {
        foreach (var verb in new[] { "deploy", "app" })
        {
            var run = CliRun.Of([verb, .. args]);
            Assert.True(run.ExitCode == 2, run.ToString());
            var line = Assert.Single(run.StderrLines);
            Assert.Contains(names, line);
            Assert.Empty(run.Stdout);
        }
    }

    [Fact]
    public void DeployWithoutAModelIsAUserError()
    {
        // Unlike `osprey app`, which opens the demo model (AppDemoModelTests).
        var run = CliRun.Of(["deploy", "--port", "8000"]);
        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("--model", Assert.Single(run.StderrLines));
        Assert.Empty(run.Stdout);
    }

    [GeneratedRegex(@"at (http://127\.0\.0\.1:\d+)/")]
    private static partial Regex UrlPattern();

    [Theory]
    [InlineData("deploy", "osprey: serving tiny at http://127.0.0.1:")]
    [InlineData("app", "osprey: chat app for tiny at http://127.0.0.1:")]
    public async Task ServesUntilStopped(string verb, string banner)
    {
        var outText = new StringWriter();
        var errText = new StringWriter();
        var stdout = TextWriter.Synchronized(outText);
        var stderr = TextWriter.Synchronized(errText);
        // SyncTextWriter locks itself around every write.
        string Out() { lock (stdout) return outText.ToString(); }
        string Err() { lock (stderr) return errText.ToString(); }
        var options = new OptionReader(ParsedArgs.Parse(["--model", CliRun.Fixture("qwen2"), "--device", "cpu", "--torch_dtype", "float32", "--port", "0",
            "--served_model_name", "tiny", "--max_model_len", "64", "--max_batch_size", "2", "--api_key", "k"]), verb);
        using var stop = new CancellationTokenSource();
        var exit = Task.Factory.StartNew(() => verb == "deploy"
            ? new DeployCommand().Run(options, stdout, stderr, stop.Token)
            : new AppCommand().Run(options, stdout, stderr, stop.Token), TaskCreationOptions.LongRunning);
        var until = DateTime.UtcNow.AddSeconds(30);
        while (!Out().Contains("osprey: ", StringComparison.Ordinal) && !exit.IsCompleted && DateTime.UtcNow < until) await Task.Delay(20);
        var printed = Out();
        Assert.True(printed.StartsWith(banner, StringComparison.Ordinal), printed + Err());
        var url = UrlPattern().Match(printed).Groups[1].Value;

        using var http = new HttpClient { BaseAddress = new Uri(url) };
        Assert.Equal(401, (int)(await http.GetAsync("/v1/models")).StatusCode);
        http.DefaultRequestHeaders.Authorization = new("Bearer", "k");
        var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement;
        Assert.Equal("tiny", models.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal(64, models.GetProperty("data")[0].GetProperty("max_model_len").GetInt32());

        stop.Cancel();
        Assert.Equal(0, await exit.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("osprey: server stopped.", Err());
    }
}
