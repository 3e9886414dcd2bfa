using System.Text.Json;
using Microsoft.Extensions.AI;
using Osprey.Serving;

namespace Osprey.Tests.Serving;

/// <summary>
/// <see cref="OspreyChatClient"/> with Microsoft.Extensions.AI's <see cref="ChatResponseFormat"/>: ForJsonSchema
/// replies from the random-weight qwen2 fixture parse and validate against the schema (NJsonSchema), Json
/// replies are objects, and ChatToolMode.RequireAny / RequireSpecific force one call whose arguments validate
/// against the function's schema.
/// </summary>
public sealed class ChatClientResponseFormatTests
{
    static readonly Lazy<ServedModel> s_qwen2 = new(() => ServedModel.Load(ChatClientTests.FixtureDir("qwen2"), ChatClientTests.Cpu,
        new ServeOptions { Engine = new EngineOptions { MaxBatchSize = 4, MaxModelLen = 384 } }));

    const string Schema = """
        {"type":"object","properties":{"city":{"type":"string","maxLength":6},"rank":{"enum":[1,2,3]},"tags":{"type":"array","items":{"type":"string","maxLength":2},"maxItems":2}},
         "required":["city","rank","tags"],"additionalProperties":false}
        """;

    [Fact]
    public async Task ForJsonSchemaRepliesValidate()
    {
        using var client = new OspreyChatClient(s_qwen2.Value);
        using var schemaDoc = JsonDocument.Parse(Schema);
        var validator = await NJsonSchema.JsonSchema.FromJsonAsync(Schema);
        for (var seed = 0; seed < 3; seed++)
        {
            var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "A city as JSON.")], new ChatOptions
            {
                ResponseFormat = ChatResponseFormat.ForJsonSchema(schemaDoc.RootElement, "city"), Temperature = 1.0f, Seed = seed, MaxOutputTokens = 250,
            });
            Assert.True(response.FinishReason == ChatFinishReason.Stop, $"seed {seed}: {response.FinishReason}: {response.Text}");
            var errors = validator.Validate(response.Text);
            Assert.True(errors.Count == 0, $"seed {seed}: {response.Text}: {string.Join("; ", errors)}");
        }
    }

    [Fact]
    public async Task JsonRepliesAreObjects()
    {
        using var client = new OspreyChatClient(s_qwen2.Value);
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "JSON please.")],
            new ChatOptions { ResponseFormat = ChatResponseFormat.Json, Temperature = 1.0f, Seed = 5, MaxOutputTokens = 200 });
        Assert.StartsWith("{", response.Text.TrimStart());
        if (response.FinishReason == ChatFinishReason.Stop) Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(response.Text).RootElement.ValueKind);
        else Assert.Equal(ChatFinishReason.Length, response.FinishReason);
    }

    [Fact]
    public async Task RequiredToolModesForceOneCallWhoseArgumentsValidate()
    {
        using var client = new OspreyChatClient(s_qwen2.Value);
        const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string","maxLength":8},"unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false}""";
        const string TimeSchema = """{"type":"object","properties":{"zone":{"type":"string","maxLength":5}},"required":["zone"],"additionalProperties":false}""";
        using var weatherDoc = JsonDocument.Parse(WeatherSchema);
        using var timeDoc = JsonDocument.Parse(TimeSchema);
        AITool[] tools =
        [
            AIFunctionFactory.CreateDeclaration("get_weather", "Weather for a city.", weatherDoc.RootElement.Clone()),
            AIFunctionFactory.CreateDeclaration("get_time", "The time in a zone.", timeDoc.RootElement.Clone()),
        ];
        var validators = new Dictionary<string, NJsonSchema.JsonSchema>
        {
            ["get_weather"] = await NJsonSchema.JsonSchema.FromJsonAsync(WeatherSchema),
            ["get_time"] = await NJsonSchema.JsonSchema.FromJsonAsync(TimeSchema),
        };
        var names = new HashSet<string>();
        foreach (var (mode, allowed) in new (ChatToolMode, string[])[] { (ChatToolMode.RequireSpecific("get_time"), ["get_time"]), (ChatToolMode.RequireAny, ["get_weather", "get_time"]) })
            for (var seed = 0; seed < 3; seed++)
            {
                // An untrained model prompted for nothing in particular: only the grammar makes it call.
                var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hello there.")], new ChatOptions
                {
                    Tools = tools, ToolMode = mode, Temperature = 1.0f, Seed = seed, MaxOutputTokens = 200,
                });
                Assert.True(response.FinishReason == ChatFinishReason.ToolCalls, $"{mode} seed {seed}: {response.FinishReason}: {response.Text}");
                var call = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
                Assert.Contains(call.Name, allowed);
                names.Add(call.Name);
                var arguments = JsonSerializer.Serialize(call.Arguments);
                var errors = validators[call.Name].Validate(arguments);
                Assert.True(errors.Count == 0, $"{mode} seed {seed}: {call.Name}({arguments}): {string.Join("; ", errors)}");
            }
        Assert.Contains("get_time", names);
    }

    [Fact]
    public async Task RequiringAFunctionThatIsNotThereSaysWhich()
    {
        using var client = new OspreyChatClient(s_qwen2.Value);
        using var doc = JsonDocument.Parse("""{"type":"object","properties":{}}""");
        var e = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hi.")], new ChatOptions
        {
            Tools = [AIFunctionFactory.CreateDeclaration("a", "A.", doc.RootElement.Clone())], ToolMode = ChatToolMode.RequireSpecific("b"),
        }));
        Assert.Contains("'b'", e.Message);
    }
}
