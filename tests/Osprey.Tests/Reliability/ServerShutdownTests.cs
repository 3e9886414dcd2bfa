using System.Text;
using Osprey.Serving;
using Osprey.Tests.Server;

namespace Osprey.Tests.Reliability;

/// <summary>Stopping the server while a reply streams (issue 15).</summary>
public sealed class ServerShutdownTests
{
    [Theory]
    [InlineData("/v1/chat/completions", "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]")]
    [InlineData("/v1/completions", "\"prompt\": \"hi\"")]
    public async Task AStreamCutByShutdownEndsWithAnErrorEvent(string path, string prompt)
    {
        // A reply far longer than the test takes, so it is still streaming when the host stops.
        await using var server = await TestServer.StartAsync("qwen2", new EngineOptions { MaxBatchSize = 2, MaxModelLen = 4096 });
        var json = $"{{{prompt}, \"max_tokens\": 4000, \"ignore_eos\": true, \"stream\": true}}";
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        while (await reader.ReadLineAsync() is { } line)
        {
            text.AppendLine(line);
            if (line.StartsWith("data: {", StringComparison.Ordinal) && line.Contains("\"text\":\"", StringComparison.Ordinal) | line.Contains("\"content\":\"", StringComparison.Ordinal) && text.Length > 2000) break;
        }
        var stopping = server.App.StopAsync();
        text.Append(await reader.ReadToEndAsync());
        await stopping;
        var events = text.ToString().Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).ToList();
        Assert.DoesNotContain("data: [DONE]", events);
        Assert.DoesNotContain(events, e => e.Contains("\"finish_reason\":\"", StringComparison.Ordinal));
        var last = System.Text.Json.JsonDocument.Parse(events[^1]["data: ".Length..]).RootElement;
        Assert.Equal("unavailable", TestServer.AssertError(last).GetProperty("code").GetString());
    }
}
