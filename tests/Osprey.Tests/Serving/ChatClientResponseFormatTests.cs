using System.Text.Json;
using Microsoft.Extensions.AI;
using Osprey.Serving;

namespace Osprey.Tests.Serving;

/// <summary>
/// <see cref="OspreyChatClient"/> with Microsoft.Extensions.AI's <see cref="ChatResponseFormat"/>: ForJsonSchema
/// replies from the random-weight qwen2 fixture parse and validate against the schema (NJsonSchema), Json
/// replies are objects.
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
}
