using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Cli.Args;
using Osprey.Cli.Commands;
using Osprey.Tests.Cli.Commands;

namespace Osprey.Tests.Server;

/// <summary>
/// <c>osprey app</c> without --model serves the built-in demo model, as <c>osprey infer</c> chats with it (issue 16).
/// XDG_CACHE_HOME points at a temp folder, so the user's cache is never touched.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed partial class AppDemoModelTests
{
    [GeneratedRegex(@"at (http://127\.0\.0\.1:\d+)/")]
    private static partial Regex UrlPattern();

    [Fact]
    public async Task AppWithoutAModelServesTheDemoModel()
    {
        using var cache = new TempDirectory();
        using var _ = new EnvironmentVariableScope("XDG_CACHE_HOME", cache.Path);
        var outText = new StringWriter();
        var errText = new StringWriter();
        var stdout = TextWriter.Synchronized(outText);
        var stderr = TextWriter.Synchronized(errText);
        string Out() { lock (stdout) return outText.ToString(); }
        string Err() { lock (stderr) return errText.ToString(); }
        var options = new OptionReader(ParsedArgs.Parse(["--device", "cpu", "--port", "0", "--max_model_len", "64"]), "app");
        using var stop = new CancellationTokenSource();
        var exit = Task.Factory.StartNew(() => new AppCommand().Run(options, stdout, stderr, stop.Token), TaskCreationOptions.LongRunning);
        var until = DateTime.UtcNow.AddSeconds(60);
        while (!Out().Contains("osprey: ", StringComparison.Ordinal) && !exit.IsCompleted && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.True(Out().StartsWith("osprey: chat app for ", StringComparison.Ordinal), Out() + Err());
        Assert.Contains("demo model", Err());
        Assert.True(File.Exists(Path.Combine(cache.Path, "osprey", "demo-llama-v1", "model.safetensors")));

        using var http = new HttpClient { BaseAddress = new Uri(UrlPattern().Match(Out()).Groups[1].Value) };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/")).StatusCode);
        var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement;
        Assert.Equal("demo-llama-v1", models.GetProperty("data")[0].GetProperty("id").GetString());

        stop.Cancel();
        Assert.Equal(0, await exit.WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
