using System.ClientModel;
using System.Net.Http.Headers;
using System.Text.Json;
using OpenAI.Chat;
using Osprey.Serving;

namespace Osprey.Tests.Server;

/// <summary>--api_key guards every route; the queue limit answers 429; a client that goes away cancels its request.</summary>
public sealed class AuthAndLimitsTests
{
    [Fact]
    public async Task EveryRouteNeedsTheBearerKey()
    {
        await using var server = await TestServer.StartAsync("qwen2", new EngineOptions { MaxBatchSize = 2, MaxModelLen = 128 }, apiKey: "sk-osprey-test");
        var e = await Assert.ThrowsAsync<ClientResultException>(() => server.Chat(key: "sk-wrong").CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(401, e.Status);

        using var anonymous = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
        foreach (var path in new[] { "/health", "/v1/models", "/", "/nowhere" })
        {
            var (status, body, _) = await server.GetAsync(path, anonymous);
            Assert.True(status == 401, $"{path}: {status}");
            TestServer.AssertError(body, "invalid_api_key");
        }
        using var wrong = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
        wrong.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "sk-osprey-tes");
        Assert.Equal(401, (await server.PostAsync("/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": 1}", wrong)).Status);
        Assert.Equal(401, (await server.GetAsync("/health", wrong)).Status);

        Assert.Equal(200, (await server.GetAsync("/health")).Status);
        Assert.Equal(200, (await server.GetAsync("/v1/models")).Status);
        ChatCompletion ok = await server.Chat().CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 2, Temperature = 0 });
        Assert.Equal(ChatMessageRole.Assistant, ok.Role);
    }

    [Fact]
    public async Task FullQueueIs429AndADisconnectCancelsTheRequest()
    {
        // A reply far longer than the test takes, however fast the machine, so it is still running when the client goes
        // away (the tiny model makes thousands of tokens a second, and loopback socket buffers absorb them unread).
        await using var server = await TestServer.StartAsync("qwen2", new EngineOptions { MaxBatchSize = 1, MaxQueue = 0, MaxModelLen = 65536 });
        var before = server.Model.Engine.Stats;

        // A long streamed request holds the only slot.
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 60000, ignore_eos = true, temperature = 0, stream = true }),
                System.Text.Encoding.UTF8, "application/json"),
        };
        var response = await server.HangUpHttp().SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync();
        var reader = new StreamReader(stream);
        for (var i = 0; i < 4; i++) Assert.StartsWith("data: ", await ReadEvent(reader));
        Assert.Equal(1, server.Model.Engine.Stats.Running);

        using (var busy = await server.Http.PostAsync("/v1/completions", new StringContent("{\"prompt\": \"abc\", \"max_tokens\": 2}", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(429, (int)busy.StatusCode);
            TestServer.AssertError(JsonDocument.Parse(await busy.Content.ReadAsStringAsync()).RootElement, "queue_full");
            // RFC 9110 §10.2.3: Retry-After as delay-seconds, which the OpenAI SDKs honour before retrying.
            Assert.True(busy.Headers.RetryAfter?.Delta is { } wait && wait >= TimeSpan.Zero, busy.Headers.ToString());
        }

        // The client goes away mid-stream: the engine cancels the request and frees the slot.
        response.Dispose();
        var after = await server.WaitIdleAsync();
        Assert.Equal(0, after.Running);
        Assert.Equal(0, after.SlotsInUse);
        Assert.Equal(0, after.Waiting);
        Assert.True(after.Cancelled > before.Cancelled, $"cancelled {before.Cancelled} -> {after.Cancelled}");
        Assert.True(after.GeneratedTokens < 60000);

        // And the server takes new work again.
        Assert.Equal(200, (await server.PostAsync("/v1/completions", "{\"prompt\": \"abc\", \"max_tokens\": 2}")).Status);
    }

    [Fact]
    public async Task NonStreamedRequestsCancelWhenTheClientGivesUp()
    {
        await using var server = await TestServer.StartAsync("qwen2", new EngineOptions { MaxBatchSize = 1, MaxModelLen = 65536 });
        using var impatient = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
        using var cts = new CancellationTokenSource();
        var post = impatient.PostAsync("/v1/completions", new StringContent("{\"prompt\": \"abc\", \"max_tokens\": 60000, \"ignore_eos\": true}", System.Text.Encoding.UTF8, "application/json"), cts.Token);
        var until = DateTime.UtcNow.AddSeconds(20);
        while (server.Model.Engine.Stats.GeneratedTokens < 5 && DateTime.UtcNow < until) await Task.Delay(10);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => post);
        var after = await server.WaitIdleAsync();
        Assert.Equal(0, after.Running);
        Assert.Equal(1, after.Cancelled);
        Assert.True(after.GeneratedTokens < 60000);
    }

    static async Task<string> ReadEvent(StreamReader reader)
    {
        var line = await reader.ReadLineAsync();
        while (line == "") line = await reader.ReadLineAsync();
        return line ?? "";
    }
}
