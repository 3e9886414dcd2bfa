using System.Text.Json;
using Microsoft.Extensions.AI;
using Osprey.Inference;
using Osprey.Server;
using Osprey.Serving;

namespace Osprey.Tests.Server;

/// <summary>The server and OspreyChatClient hand the chat template one and the same input for one conversation.</summary>
public sealed class ChatConversionTests
{
    [Fact]
    public void ServerAndChatClientGiveTheTemplateTheSameConversation()
    {
        var messages = new List<ChatMessage>
        {
            new(ChatRole.System, "Be brief."),
            new(ChatRole.User, "Weather in Paris?"),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris", ["days"] = 2 })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "sunny")]),
        };
        var clientTurns = ChatMessageConversion.FromChatMessages(messages);
        var clientTools = ChatMessageConversion.FromAITools([AIFunctionFactory.Create((string city) => city, "get_weather", "The weather in a city.")]);
        Assert.NotNull(clientTools);

        // The same conversation as an OpenAI request (the user's text as content parts; the call's arguments as an
        // object, the shape Microsoft.Extensions.AI carries them in).
        using var body = JsonDocument.Parse("""
            {"messages": [
              {"role": "system", "content": "Be brief."},
              {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Paris?"}]},
              {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
             "tools": [TOOL], "tool_choice": "auto"}
            """.Replace("TOOL", clientTools[0].GetRawText(), StringComparison.Ordinal));
        var fields = new RequestFields(body.RootElement);
        var serverTurns = ChatInput.Turns(fields.Get("messages")!.Value);
        var serverTools = ChatInput.Tools(fields);

        var clientMessages = ChatMessageConversion.TemplateMessages(clientTurns);
        var serverMessages = ChatMessageConversion.TemplateMessages(serverTurns);
        Assert.Equal(JsonSerializer.Serialize(clientMessages), JsonSerializer.Serialize(serverMessages));
        Assert.Equal(JsonSerializer.Serialize(ChatMessageConversion.TemplateTools(clientTools)), JsonSerializer.Serialize(ChatMessageConversion.TemplateTools(serverTools)));

        // And so the rendered prompts are the same.
        var folder = TestServer.Fixture("qwen2");
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(folder, "the fixture has one."), folder, null);
        var fromClient = chat.Render(clientMessages, ChatMessageConversion.TemplateTools(clientTools));
        Assert.Equal(fromClient, chat.Render(serverMessages, ChatMessageConversion.TemplateTools(serverTools)));
        Assert.Contains("Weather in Paris?", fromClient);
    }

    [Fact]
    public void AnExplicitNullContentStaysNullAndAnAbsentOneStaysAbsent()
    {
        using var body = JsonDocument.Parse("""
            [{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
             {"role": "assistant", "tool_calls": [{"id": "d", "type": "function", "function": {"name": "g", "arguments": "{}"}}], "name": "x"}]
            """);
        var turns = ChatMessageConversion.TemplateMessages(ChatInput.Turns(body.RootElement));
        var first = (JsonElement)turns[0]!;
        var second = (JsonElement)turns[1]!;
        Assert.Equal(JsonValueKind.Null, first.GetProperty("content").ValueKind);
        Assert.False(second.TryGetProperty("content", out _));
        Assert.Equal("x", second.GetProperty("name").GetString());
        Assert.Equal("{}", second.GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString());
    }
}
