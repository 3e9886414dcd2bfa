using System.Text.Json;
using OpenAI.Chat;

#pragma warning disable OPENAI001 // Seed is marked experimental in the client; the tests need reproducible samples.

namespace Osprey.Tests.Server;

/// <summary>
/// response_format through the official OpenAI .NET client on a real Kestrel over the qwen2 fixture (random
/// weights): json_schema replies parse and validate (NJsonSchema), json_object replies are objects, and a schema
/// keyword outside the subset is a 400 whose param names its path.
/// </summary>
public sealed class StructuredOutputTests : IAsyncLifetime
{
    TestServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await TestServer.StartAsync("qwen2", new Osprey.Serving.EngineOptions { MaxBatchSize = 4, MaxModelLen = 384 });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    const string Schema = """
        {"type":"object","properties":{"answer":{"type":"string","maxLength":5},"n":{"type":"integer"},"ok":{"type":"boolean"}},
         "required":["answer","n","ok"],"additionalProperties":false}
        """;

    [Fact]
    public async Task JsonSchemaRepliesValidate()
    {
        var validator = await NJsonSchema.JsonSchema.FromJsonAsync(Schema);
        for (var seed = 0; seed < 3; seed++)
        {
            ChatCompletion reply = await _server.Chat().CompleteChatAsync([new UserChatMessage("Give me JSON.")], new ChatCompletionOptions
            {
                ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("reply", BinaryData.FromString(Schema), jsonSchemaIsStrict: true),
                Temperature = 1.0f, Seed = seed, MaxOutputTokenCount = 250,
            });
            var text = reply.Content[0].Text;
            Assert.True(reply.FinishReason == ChatFinishReason.Stop, $"seed {seed}: {reply.FinishReason}: {text}");
            using var doc = JsonDocument.Parse(text);
            var errors = validator.Validate(text);
            Assert.True(errors.Count == 0, $"seed {seed}: {text}: {string.Join("; ", errors)}");
        }
    }

    [Fact]
    public async Task JsonObjectRepliesAreObjects()
    {
        ChatCompletion reply = await _server.Chat().CompleteChatAsync([new UserChatMessage("Give me JSON.")], new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat(), Temperature = 1.0f, Seed = 3, MaxOutputTokenCount = 200,
        });
        var text = reply.Content[0].Text;
        Assert.StartsWith("{", text.TrimStart());
        if (reply.FinishReason == ChatFinishReason.Stop) Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text).RootElement.ValueKind);
        else Assert.Equal(ChatFinishReason.Length, reply.FinishReason);
    }

    [Fact]
    public async Task UnsupportedKeywordIsA400NamingItsPath()
    {
        var body = """
            {"messages":[{"role":"user","content":"hi"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"n":{"type":"integer","minimum":0}}}}}}
            """;
        var (status, json, _) = await _server.PostAsync("/v1/chat/completions", body);
        Assert.Equal(400, status);
        var error = TestServer.AssertError(json);
        Assert.Equal("response_format.json_schema.schema.properties.n.minimum", error.GetProperty("param").GetString());
        Assert.Contains("Supported keywords: type, properties, required", error.GetProperty("message").GetString());

        var (badType, typeJson, _) = await _server.PostAsync("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"yaml"}}""");
        Assert.Equal(400, badType);
        Assert.Equal("response_format.type", TestServer.AssertError(typeJson).GetProperty("param").GetString());
    }
}
