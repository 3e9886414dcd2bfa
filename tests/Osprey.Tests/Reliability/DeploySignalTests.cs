using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Tests.Server;

namespace Osprey.Tests.Reliability;

/// <summary>
/// SIGTERM (what <c>docker stop</c> and job schedulers send) to a real <c>osprey deploy</c> / <c>osprey app</c>
/// process while a reply streams: the stream ends with an OpenAI error event (no finish_reason, no [DONE]) and the
/// server drains and exits 0 with its stop line (issue 15, items 3 and 4).
/// </summary>
public sealed partial class DeploySignalTests
{
    [GeneratedRegex(@"at (http://127\.0\.0\.1:\d+)/")]
    private static partial Regex UrlPattern();

    [Theory]
    [InlineData("deploy")]
    [InlineData("app")]
    public async Task SigtermDuringAStreamEndsItWithAnErrorEventAndExitsCleanly(string verb)
    {
        if (OperatingSystem.IsWindows()) return; // no SIGTERM there
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "osprey.dll"));
        foreach (var a in new[] { verb, "--model", TestServer.Fixture("qwen2"), "--device", "cpu", "--torch_dtype", "float32", "--port", "0",
                     "--max_model_len", "4096", "--max_batch_size", "2" })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = new StringBuilder();
        try
        {
            string? url = null;
            var banner = Task.Run(async () =>
            {
                while (await process.StandardOutput.ReadLineAsync() is { } line)
                {
                    stdout.AppendLine(line);
                    if (UrlPattern().Match(line) is { Success: true } m) return m.Groups[1].Value;
                }
                return null;
            });
            url = await banner.WaitAsync(TimeSpan.FromSeconds(120));
            if (url is null)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"no banner: {stdout}{await stderr}");
            }

            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            // A reply far longer than the test takes, so it is still streaming when the signal comes.
            const string json = "{\"prompt\": \"hi\", \"max_tokens\": 4000, \"ignore_eos\": true, \"stream\": true}";
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(200, (int)response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var text = new StringBuilder();
            while (await reader.ReadLineAsync() is { } line)
            {
                text.AppendLine(line);
                if (line.Contains("\"text\":\"", StringComparison.Ordinal) && text.Length > 2000) break;
            }
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                kill.WaitForExit();
                Assert.Equal(0, kill.ExitCode);
            }
            text.Append(await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.True(process.WaitForExit(30_000), $"osprey {verb} did not stop within 30 s of SIGTERM");
            var log = $"exit {process.ExitCode}\n--- stderr\n{await stderr}";
            var events = text.ToString().Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).ToList();
            Assert.DoesNotContain("data: [DONE]", events);
            Assert.DoesNotContain(events, e => e.Contains("\"finish_reason\":\"", StringComparison.Ordinal));
            var last = JsonDocument.Parse(events[^1]["data: ".Length..]).RootElement;
            Assert.Equal("unavailable", TestServer.AssertError(last).GetProperty("code").GetString());
            Assert.True(process.ExitCode == 0, log);
            Assert.Contains("osprey: server stopped.", log, StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
