using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Osprey.Serving;
using Osprey.Tests.Server;

namespace Osprey.Tests.Reliability;

/// <summary>
/// Requests the web server itself would refuse with an empty body: huge or too many headers, a NUL in the path, a
/// request line over 8 KB (issue 15).
/// </summary>
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

    /// <summary>
    /// Kestrel refuses these before any middleware runs. The statuses are RFC 9110/6585's (400 for a malformed target,
    /// 414 URI Too Long, 431 Request Header Fields Too Large); the body must be OpenAI's error object, with a
    /// Content-Length that matches it.
    /// </summary>
    [Fact]
    public async Task ErrorsKestrelAnswersItselfHaveOpenAiBodies()
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        var cases = new (byte[] Head, int Status)[]
        {
            ([.. Ascii("GET /v1/mo"), 0, .. Ascii("dels HTTP/1.1\r\nHost: x")], 400),
            (Ascii("GET /v1/mo%00dels HTTP/1.1\r\nHost: x"), 400),
            (Ascii($"GET /v1/models?q={new string('a', 9000)} HTTP/1.1\r\nHost: x"), 414),
            (Ascii("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + new string('a', 300_000)), 431),
        };
        foreach (var (request, expected) in cases)
        {
            var (status, head, body) = await Raw(server, request);
            Assert.True(status == expected, $"{head}\n{body}");
            Assert.Contains("Content-Type: application/json", head, StringComparison.OrdinalIgnoreCase);
            Assert.Contains($"Content-Length: {Encoding.UTF8.GetByteCount(body)}", head, StringComparison.OrdinalIgnoreCase);
            var error = TestServer.AssertError(JsonDocument.Parse(body).RootElement);
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        }
    }

    /// <summary>On one kept-alive connection: an answered request passes untouched, then a malformed one gets a body.</summary>
    [Fact]
    public async Task AKeptAliveConnectionAnswersNormallyThenGivesAMalformedRequestABody()
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        const string chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 3, \"stream\": true}";
        var first = $"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {chat.Length}\r\n\r\n{chat}";
        var (status, head, body) = await Raw(server, [.. Ascii(first + "GET /v1/mo%00dels HTTP/1.1\r\nHost: x")]);
        Assert.True(status == 200, head);
        // The stream is chunked and ends with [DONE] and the zero-length chunk, then the second response follows.
        var second = body.IndexOf("HTTP/1.1 ", StringComparison.Ordinal);
        Assert.True(second > 0, body);
        Assert.Contains("data: [DONE]", body[..second], StringComparison.Ordinal);
        Assert.EndsWith("0\r\n\r\n", body[..second], StringComparison.Ordinal);
        var rest = body[second..];
        Assert.StartsWith("HTTP/1.1 400 ", rest, StringComparison.Ordinal);
        var json = rest[(rest.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        TestServer.AssertError(JsonDocument.Parse(json).RootElement);
    }

    /// <summary>
    /// Large bodies share a budget of four of the largest allowed: with four held open (headers sent, body not), a fifth
    /// large one is refused at once with 429 and Retry-After, a small one still passes, and once the four are gone
    /// the large one is read again.
    /// </summary>
    [Fact]
    public async Task LargeBodiesBeyondTheBudgetAreRefusedWith429UntilOthersFinish()
    {
        const long maxBody = 4 << 20;
        await using var server = await TestServer.StartAsync("qwen2", Small, maxBody: maxBody);
        var uri = new Uri(server.BaseUrl);
        var held = new List<TcpClient>();
        using var stopTrickle = new CancellationTokenSource();
        Task? trickle = null;
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var tcp = new TcpClient();
                held.Add(tcp);
                await tcp.ConnectAsync(uri.Host, uri.Port);
                await tcp.GetStream().WriteAsync(Ascii($"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {maxBody}\r\n\r\n{{\"prompt\": \""));
            }
            // The four keep sending a little of their bodies (800 bytes/s each, far from their 4 MB): a body that sends
            // nothing is dropped by Kestrel after its 5 s grace below 240 bytes/s, which gave its budget back while a
            // loaded machine was still getting to the fifth post (the full suite once waited 60 s for a 429 that way;
            // 7 s of silence before the fifth post reproduces it, and with this trickle it passes).
            trickle = Task.Run(async () =>
            {
                var bytes = Ascii(new string('a', 200));
                while (!stopTrickle.IsCancellationRequested)
                {
                    foreach (var tcp in held) await tcp.GetStream().WriteAsync(bytes, stopTrickle.Token);
                    await Task.Delay(250, stopTrickle.Token);
                }
            });
            var large = JsonSerializer.Serialize(new { prompt = new string('a', 2 << 20), max_tokens = 1 });
            // The four reach the server's middleware on their own schedule: ask until the budget is full.
            var (status, body, retryAfter) = await Until(() => Post(server, large), r => r.Status == 429);
            Assert.True(status == 429, $"{status}: {body}");
            var error = TestServer.AssertError(body, "too_many_large_requests");
            Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
            Assert.Contains("send it again", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.Equal("1", retryAfter);
            // Small bodies are never counted.
            var (small, _, _) = await server.PostAsync("/v1/completions", JsonSerializer.Serialize(new { prompt = "hi", max_tokens = 1 }));
            Assert.Equal(200, small);
        }
        finally
        {
            await stopTrickle.CancelAsync();
            try { if (trickle is not null) await trickle; }
            catch (OperationCanceledException) { }
            foreach (var tcp in held) tcp.Dispose();
        }
        var (after, afterBody, _) = await Until(() => Post(server, JsonSerializer.Serialize(new { prompt = new string('a', 2 << 20), max_tokens = 1 })), r => r.Status != 429);
        Assert.True(after == 400, $"{after}: {afterBody}");
        TestServer.AssertError(afterBody, "context_length_exceeded");
    }

    static async Task<(int Status, JsonElement Body, string? RetryAfter)> Post(TestServer server, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await server.Http.PostAsync("/v1/completions", content);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), response.Headers.RetryAfter?.ToString());
    }

    /// <summary>Repeats <paramref name="send"/> until <paramref name="done"/> (at most 100 times, 50 ms apart); the last answer.</summary>
    static async Task<T> Until<T>(Func<Task<T>> send, Func<T, bool> done)
    {
        // A deadline, not a count: on a loaded 2-core machine the held connections can take seconds to reach the
        // middleware, and each 2 MB post takes longer too (a CI run gave up after 100 tries in 7 s).
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var answer = await send();
        while (!done(answer) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
            answer = await send();
        }
        return answer;
    }
}
