using System.Text.Json;
using OpenAI.Chat;

#pragma warning disable OPENAI001 // Seed is marked experimental in the client; the tests need reproducible samples.

namespace Osprey.Tests.Server;

/// <summary>
/// Forced tool calls through the official OpenAI .NET client on a real Kestrel over the qwen2 fixture, whose
/// random weights would never write a call on their own (and spend many tokens on the whitespace JSON allows, hence the room): with a named function or "required", every reply is a
/// tool call whose arguments validate against that function's parameters schema (NJsonSchema).
/// </summary>
public sealed class ForcedToolCallTests : IAsyncLifetime
{
    TestServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await TestServer.StartAsync("qwen2", new Osprey.Serving.EngineOptions { MaxBatchSize = 4, MaxModelLen = 1024 });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    const string WeatherSchema = """
        {"type":"object","properties":{"city":{"type":"string","maxLength":8},"days":{"type":"integer"},"unit":{"enum":["c","f"]}},
         "required":["city","days","unit"],"additionalProperties":false}
        """;

    const string SearchSchema = """
        {"type":"object","properties":{"query":{"type":"string","minLength":1,"maxLength":6},"top":{"type":"array","items":{"type":"boolean"},"maxItems":2}},
         "required":["query"],"additionalProperties":false}
        """;

    static ChatTool Weather => ChatTool.CreateFunctionTool("get_weather", "Weather for a city.", BinaryData.FromString(WeatherSchema), functionSchemaIsStrict: true);

    static ChatTool Search => ChatTool.CreateFunctionTool("search", "Search the web.", BinaryData.FromString(SearchSchema));

    [Fact]
    public async Task ANamedFunctionIsAlwaysCalledWithValidArguments()
    {
        var validator = await NJsonSchema.JsonSchema.FromJsonAsync(WeatherSchema);
        for (var seed = 0; seed < 3; seed++)
        {
            var options = new ChatCompletionOptions
            {
                Tools = { Weather, Search }, ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather"),
                Temperature = 1.0f, Seed = seed, MaxOutputTokenCount = 600,
            };
            ChatCompletion reply = await _server.Chat().CompleteChatAsync([new UserChatMessage("Weather in Paris?")], options);
            Assert.True(reply.FinishReason == ChatFinishReason.ToolCalls, $"seed {seed}: {reply.FinishReason}: {(reply.Content.Count > 0 ? reply.Content[0].Text : "")}");
            var call = Assert.Single(reply.ToolCalls);
            Assert.Equal("get_weather", call.FunctionName);
            var args = call.FunctionArguments.ToString();
            var errors = validator.Validate(args);
            Assert.True(errors.Count == 0, $"seed {seed}: {args}: {string.Join("; ", errors)}");
        }
    }

    [Fact]
    public async Task RequiredCallsOneOfTheToolsWithValidArguments()
    {
        var validators = new Dictionary<string, NJsonSchema.JsonSchema>
        {
            ["get_weather"] = await NJsonSchema.JsonSchema.FromJsonAsync(WeatherSchema),
            ["search"] = await NJsonSchema.JsonSchema.FromJsonAsync(SearchSchema),
        };
        for (var seed = 10; seed < 13; seed++)
        {
            var options = new ChatCompletionOptions
            {
                Tools = { Weather, Search }, ToolChoice = ChatToolChoice.CreateRequiredChoice(),
                Temperature = 1.0f, Seed = seed, MaxOutputTokenCount = 600,
            };
            ChatCompletion reply = await _server.Chat().CompleteChatAsync([new UserChatMessage("Do something.")], options);
            Assert.True(reply.FinishReason == ChatFinishReason.ToolCalls, $"seed {seed}: {reply.FinishReason}");
            var call = Assert.Single(reply.ToolCalls);
            Assert.True(validators.TryGetValue(call.FunctionName, out var validator), $"seed {seed}: called '{call.FunctionName}'");
            var args = call.FunctionArguments.ToString();
            Assert.True(validator!.Validate(args).Count == 0, $"seed {seed}: {call.FunctionName}({args})");
        }
    }

    [Fact]
    public async Task AnUnsupportedParametersKeywordIsA400NamingItsPath()
    {
        var body = """
            {"messages":[{"role":"user","content":"hi"}], "tool_choice":"required",
             "tools":[{"type":"function","function":{"name":"a"}},
                      {"type":"function","function":{"name":"b","parameters":{"type":"object","properties":{"n":{"type":"integer","minimum":0}}}}}]}
            """;
        var (status, json, _) = await _server.PostAsync("/v1/chat/completions", body);
        Assert.Equal(400, status);
        var error = TestServer.AssertError(json);
        Assert.Equal("tools[1].function.parameters.properties.n.minimum", error.GetProperty("param").GetString());
        Assert.Contains("Supported keywords", error.GetProperty("message").GetString());
    }
}
