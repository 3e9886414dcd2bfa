using System.ClientModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI.Chat;

namespace Osprey.Tests.Server;

/// <summary>
/// Greedy chat through the official OpenAI client, for every parity family: the reply equals transformers' greedy
/// chat generation (infer_golden.json). The repetition-penalty case goes as raw JSON (the client has no such field).
/// </summary>
public sealed class ChatGoldenTests
{
    public static TheoryData<string> Families() => new() { "qwen2", "qwen3", "llama", "llama3", "gemma2", "gemma3_text", "phi3", "mistral" };

    [Theory]
    [MemberData(nameof(Families))]
    public async Task GreedyChatMatchesTransformers(string family)
    {
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(TestServer.Fixture(family), "infer_golden.json")))!;
        await using var server = await TestServer.StartAsync(family);
        var client = server.Chat();
        foreach (var c in golden["cases"]!.AsArray())
        {
            var name = c!["name"]!.GetValue<string>();
            var settings = c["settings"]!;
            var expected = c["response"]!.GetValue<string>();
            var maxTokens = settings["max_new_tokens"]!.GetValue<int>();
            var newIds = c["new_ids"]!.AsArray().Count;
            if (settings["repetition_penalty"] is JsonValue penalty)
            {
                var body = new JsonObject
                {
                    ["model"] = server.Model.Name,
                    ["messages"] = c["messages"]!.DeepClone(),
                    ["temperature"] = 0,
                    ["max_tokens"] = maxTokens,
                    ["repetition_penalty"] = penalty.GetValue<double>(),
                };
                var (status, json, text) = await server.PostAsync("/v1/chat/completions", body.ToJsonString());
                Assert.True(status == 200, text);
                Assert.Equal(expected, json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
                continue;
            }
            var messages = c["messages"]!.AsArray().Select(m => (ChatMessage)(m!["role"]!.GetValue<string>() switch
            {
                "system" => new SystemChatMessage(m["content"]!.GetValue<string>()),
                "user" => new UserChatMessage(m["content"]!.GetValue<string>()),
                "assistant" => new AssistantChatMessage(m["content"]!.GetValue<string>()),
                var r => throw new InvalidOperationException(r),
            })).ToList();
            ChatCompletion reply = await client.CompleteChatAsync(messages, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = maxTokens });
            Assert.True(expected == reply.Content[0].Text, $"{family}/{name}: expected '{expected}', got '{reply.Content[0].Text}'");
            Assert.Equal(newIds, reply.Usage.OutputTokenCount);
            Assert.Equal(c["prompt_ids"]!.AsArray().Count, reply.Usage.InputTokenCount);
            Assert.Equal(reply.Usage.InputTokenCount + reply.Usage.OutputTokenCount, reply.Usage.TotalTokenCount);
            Assert.Equal(newIds == maxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, reply.FinishReason);
            Assert.StartsWith("chatcmpl-", reply.Id);
            Assert.Equal(server.Model.Name, reply.Model);
            Assert.Equal(ChatMessageRole.Assistant, reply.Role);
        }
    }
}
