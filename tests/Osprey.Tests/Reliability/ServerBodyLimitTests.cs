using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Osprey.Tests.Server;

namespace Osprey.Tests.Reliability;

/// <summary>
/// A body over the server's limit sent with <c>Transfer-Encoding: chunked</c>, so no Content-Length announces it: the
/// limit is only found while reading. <c>OpenAiServerTests.ErrorsAreOpenAiShapedWithTheRightStatus</c> covers the announced case.
/// </summary>
public sealed class ServerBodyLimitTests
{
    [Fact]
    public async Task AChunkedBodyOverTheLimitIsA413WithAnOpenAiBody()
    {
        await using var server = await TestServer.StartAsync("qwen2", maxBody: 50_000);
        var uri = new Uri(server.BaseUrl);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        using var stream = tcp.GetStream();
        await stream.WriteAsync("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"u8.ToArray());
        // 100 chunks of 1,000 bytes (hex 3E8): twice the 50,000-byte limit, never terminated, so only the limit ends it.
        var chunk = Encoding.ASCII.GetBytes("3E8\r\n" + new string('a', 1000) + "\r\n");
        try
        {
            await stream.WriteAsync("3E8\r\n{\"messages\":[{\"role\":\"user\",\"content\":\""u8.ToArray());
            await stream.WriteAsync(Encoding.ASCII.GetBytes(new string('a', 1000 - 39) + "\r\n"));
            for (var i = 1; i < 100; i++) await stream.WriteAsync(chunk);
        }
        catch (IOException)
        {
            // The server may answer and close before all of it is sent.
        }
        using var memory = new MemoryStream();
        try { await stream.CopyToAsync(memory).WaitAsync(TimeSpan.FromSeconds(30)); } catch (IOException) { }
        var text = Encoding.UTF8.GetString(memory.ToArray());
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(split > 0, $"no response: {text}");
        Assert.True(text.StartsWith("HTTP/1.1 413 ", StringComparison.Ordinal), text);
        var error = TestServer.AssertError(JsonDocument.Parse(text[(split + 4)..]).RootElement);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("50000", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
