using System.ClientModel;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;

namespace Osprey.Tests.Server;

/// <summary>
/// The parts of OpenAI's API surface that clients written elsewhere rely on (issue 16 item 4): model retrieval, the
/// refusal fields, x-request-id, OpenAI's temperature range and context-length 400. Shapes are checked against
/// OpenAI's API reference (the chat completion object, the error object) and through the official .NET client.
/// </summary>
public sealed class ApiSurfaceTests(Qwen2ServerFixture fixture) : IClassFixture<Qwen2ServerFixture>
{
    readonly TestServer _server = fixture.Server;

    /// <summary>The fixture server's max_model_len (see <see cref="Qwen2ServerFixture"/>).</summary>
    const int MaxModelLen = 128;

    static string Chat(object extra)
    {
        var o = JsonSerializer.SerializeToNode(extra)!.AsObject();
        o["messages"] ??= new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hello, can you help me?" });
        return o.ToJsonString();
    }

    OpenAIClientOptions ClientOptions => new() { Endpoint = new Uri(_server.BaseUrl + "/v1") };

    [Fact]
    public async Task AModelIsRetrievedByIdAndAnUnknownOneIsOpenAisNotFound()
    {
        var client = new OpenAIModelClient(new ApiKeyCredential("unused"), ClientOptions);
        OpenAIModel model = await client.GetModelAsync(_server.Model.Name);
        Assert.Equal(_server.Model.Name, model.Id);
        Assert.Equal("osprey", model.OwnedBy);

        var e = await Assert.ThrowsAsync<ClientResultException>(() => client.GetModelAsync("no-such-model"));
        Assert.Equal(404, e.Status);
        var (status, body, _) = await _server.GetAsync("/v1/models/no-such-model");
        Assert.Equal(404, status);
        var error = TestServer.AssertError(body, "model_not_found");
        Assert.Equal("model", error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task MessagesAndLogprobsCarryANullRefusal()
    {
        // OpenAI's chat completion object: choices[].message.refusal and choices[].logprobs.refusal are required and nullable.
        var (status, body, text) = await _server.PostAsync("/v1/chat/completions", Chat(new { temperature = 0, max_tokens = 3, logprobs = true, top_logprobs = 2 }));
        Assert.True(status == 200, text);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("message").GetProperty("refusal").ValueKind);
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").GetProperty("refusal").ValueKind);
        Assert.Equal(3, choice.GetProperty("logprobs").GetProperty("content").GetArrayLength());

        // Streamed chunks' logprobs have the same object.
        var (_, _, sse) = await _server.PostAsync("/v1/chat/completions", Chat(new { temperature = 0, max_tokens = 2, logprobs = true, stream = true }));
        var withLogprobs = sse.Split("\n\n").Where(e => e.StartsWith("data: {", StringComparison.Ordinal))
            .Select(e => JsonDocument.Parse(e[6..]).RootElement.GetProperty("choices")[0].GetProperty("logprobs"))
            .Where(l => l.ValueKind == JsonValueKind.Object).ToList();
        Assert.NotEmpty(withLogprobs);
        Assert.All(withLogprobs, l => Assert.Equal(JsonValueKind.Null, l.GetProperty("refusal").ValueKind));

        // The official client reads them as "no refusal".
        ChatCompletion reply = await _server.Chat().CompleteChatAsync([new UserChatMessage("Hi")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 2, IncludeLogProbabilities = true });
        Assert.Null(reply.Refusal);
        Assert.Empty(reply.RefusalTokenLogProbabilities);
    }

    [Fact]
    public async Task EveryResponseHasAnXRequestIdThatIsTheBodysIdWhereItHasOne()
    {
        async Task<(HttpResponseMessage Response, string Body)> Send(HttpMethod method, string path, string? json = null)
        {
            using var request = new HttpRequestMessage(method, path);
            if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
            var response = await _server.Http.SendAsync(request);
            return (response, await response.Content.ReadAsStringAsync());
        }
        static string Id(HttpResponseMessage r) => Assert.Single(r.Headers.GetValues("x-request-id"));

        var seen = new List<string>();
        var (chat, chatBody) = await Send(HttpMethod.Post, "/v1/chat/completions", Chat(new { temperature = 0, max_tokens = 2 }));
        Assert.Equal(JsonDocument.Parse(chatBody).RootElement.GetProperty("id").GetString(), Id(chat));
        Assert.StartsWith("chatcmpl-", Id(chat));
        seen.Add(Id(chat));

        var (stream, sse) = await Send(HttpMethod.Post, "/v1/chat/completions", Chat(new { temperature = 0, max_tokens = 2, stream = true }));
        var first = sse.Split("\n\n")[0];
        Assert.Equal(JsonDocument.Parse(first[6..]).RootElement.GetProperty("id").GetString(), Id(stream));
        seen.Add(Id(stream));

        var (completion, completionBody) = await Send(HttpMethod.Post, "/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": 2}");
        Assert.Equal(JsonDocument.Parse(completionBody).RootElement.GetProperty("id").GetString(), Id(completion));
        Assert.StartsWith("cmpl-", Id(completion));
        seen.Add(Id(completion));

        // Responses without an id in the body (errors, lists, health, the 404 of an unknown route) still carry one.
        foreach (var (method, path, json) in new (HttpMethod, string, string?)[]
        {
            (HttpMethod.Post, "/v1/chat/completions", Chat(new { temperature = "hot" })),
            (HttpMethod.Post, "/v1/embeddings", "{\"input\": \"hi\"}"),
            (HttpMethod.Get, "/v1/models", null),
            (HttpMethod.Get, "/health", null),
            (HttpMethod.Get, "/nowhere", null),
        })
        {
            var (response, _) = await Send(method, path, json);
            Assert.StartsWith("req_", Id(response));
            seen.Add(Id(response));
        }
        Assert.Equal(seen.Count, seen.Distinct().Count());

        // The official client exposes it from the raw response.
        var result = await _server.Chat().CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 2 });
        Assert.True(result.GetRawResponse().Headers.TryGetValue("x-request-id", out var header));
        Assert.Equal(result.Value.Id, header);
    }

    [Fact]
    public async Task TemperatureIsOpenAisRangeZeroToTwo()
    {
        Assert.Equal(200, (await _server.PostAsync("/v1/chat/completions", Chat(new { temperature = 0, max_tokens = 1 }))).Status);
        Assert.Equal(200, (await _server.PostAsync("/v1/chat/completions", Chat(new { temperature = 2, max_tokens = 1, seed = 1 }))).Status);
        foreach (var t in new[] { -0.01, 2.01, 5 })
        {
            var (status, body, text) = await _server.PostAsync("/v1/chat/completions", Chat(new { temperature = t, max_tokens = 1 }));
            Assert.True(status == 400, $"{t}: {status} {text}");
            Assert.Equal("temperature", TestServer.AssertError(body).GetProperty("param").GetString());
        }
        var (s, b, _) = await _server.PostAsync("/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": 1, \"temperature\": 2.5}");
        Assert.Equal(400, s);
        Assert.Equal("temperature", TestServer.AssertError(b).GetProperty("param").GetString());

        var e = await Assert.ThrowsAsync<ClientResultException>(() => _server.Chat().CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { Temperature = 2.5f }));
        Assert.Equal(400, e.Status);
    }

    [Fact]
    public async Task MaxTokensBeyondTheContextIsOpenAisContextLengthError()
    {
        // Ten prompt tokens (ids, so the count is known without the tokenizer): 118 new tokens fit in 128, 119 do not.
        var ids = string.Join(", ", Enumerable.Range(40, 10));
        var (ok, okBody, okText) = await _server.PostAsync("/v1/completions", $"{{\"prompt\": [{ids}], \"max_tokens\": {MaxModelLen - 10}, \"ignore_eos\": true}}");
        Assert.True(ok == 200, okText);
        Assert.Equal(MaxModelLen - 10, okBody.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var (status, body, _) = await _server.PostAsync("/v1/completions", $"{{\"prompt\": [{ids}], \"max_tokens\": {MaxModelLen - 9}}}");
        Assert.Equal(400, status);
        var error = TestServer.AssertError(body, "context_length_exceeded");
        Assert.Equal("prompt", error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());

        // Chat: OpenAI answers 400 context_length_exceeded with param "messages" (also for max_completion_tokens).
        foreach (var field in new[] { "max_tokens", "max_completion_tokens" })
        {
            var (cs, cb, _) = await _server.PostAsync("/v1/chat/completions", Chat(new Dictionary<string, object> { [field] = MaxModelLen }));
            Assert.Equal(400, cs);
            Assert.Equal("messages", TestServer.AssertError(cb, "context_length_exceeded").GetProperty("param").GetString());
        }
        var e = await Assert.ThrowsAsync<ClientResultException>(() => _server.Chat().CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { MaxOutputTokenCount = 1000 }));
        Assert.Equal(400, e.Status);
    }
}
