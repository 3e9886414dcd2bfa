using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Osprey.Serving;
using Osprey.Tests.Server;

namespace Osprey.Tests.Reliability;

/// <summary>Requests the web server itself would refuse with an empty body: huge or too many headers (issue 15).</summary>
public sealed class ServerEdgeTests
{
    static readonly EngineOptions Small = new() { MaxBatchSize = 2, MaxModelLen = 64 };

    /// <summary>Sends <paramref name="head"/> (request line and headers, without the blank line) as raw bytes.</summary>
    static async Task<(int Status, string Head, string Body)> Raw(TestServer server, byte[] head)
    {
        var uri = new Uri(server.BaseUrl);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        using var stream = tcp.GetStream();
        await stream.WriteAsync(head);
        await stream.WriteAsync("\r\n\r\n"u8.ToArray());
        using var memory = new MemoryStream();
        try { await stream.CopyToAsync(memory).WaitAsync(TimeSpan.FromSeconds(10)); } catch (IOException) { }
        var text = Encoding.UTF8.GetString(memory.ToArray());
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(split > 0, $"no response: {text}");
        return (int.Parse(text.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture), text[..split], text[(split + 4)..]);
    }

    static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    [Fact]
    public async Task HugeHeadersAreA431WithAnOpenAiBody()
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        const string start = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
        var many = string.Join("\r\n", Enumerable.Range(0, 150).Select(i => $"X-H{i}: v"));
        foreach (var request in new[] { start + "X-Big: " + new string('a', 100_000), start + many })
        {
            var (status, head, body) = await Raw(server, Ascii(request));
            Assert.True(status == 431, $"{head}\n{body}");
            var error = TestServer.AssertError(JsonDocument.Parse(body).RootElement);
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Contains("at most", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        // Ordinary requests still pass.
        var (ok, _, _) = await server.GetAsync("/v1/models");
        Assert.Equal(200, ok);
    }
}
