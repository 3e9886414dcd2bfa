using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Server;
using Osprey.Serving;

namespace Osprey.Tests.Server;

/// <summary>Hermes-style tool calls: the parser on fixed text, its streaming hold-back, and a tools request rendered end to end.</summary>
public sealed class ToolCallTests
{
    [Fact]
    public void ParsesCallsAndKeepsTheTextOutside()
    {
        var (content, calls) = ToolCallReply.Parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>{\"name\": \"now\", \"arguments\": \"{}\"}</tool_call>");
        Assert.Equal("Let me check.", content);
        Assert.Equal(2, calls.Count);
        Assert.Equal("get_weather", calls[0].Name);
        Assert.Equal(JsonNode.Parse("{\"city\": \"Paris\", \"days\": 2}")!.ToJsonString(), JsonNode.Parse(calls[0].Arguments)!.ToJsonString());
        Assert.Equal("{}", calls[1].Arguments);
        Assert.StartsWith("call_", calls[0].Id);
        Assert.NotEqual(calls[0].Id, calls[1].Id);
    }

    [Fact]
    public void TextWithoutValidCallsStaysContent()
    {
        Assert.Equal(("plain answer", 0), Shape(ToolCallReply.Parse("plain answer")));
        const string broken = "<tool_call>{not json}</tool_call> done";
        Assert.Equal((broken, 0), Shape(ToolCallReply.Parse(broken)));
        var (content, calls) = ToolCallReply.Parse("<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}");
        Assert.Null(content);
        Assert.Equal("f", Assert.Single(calls).Name);
    }

    static (string?, int) Shape((string? Content, IReadOnlyList<ToolCall> Calls) r) => (r.Content, r.Calls.Count);

    [Fact]
    public void StreamingHoldsBackOnlyWhatMayBeACall()
    {
        var s = new ToolCallStream();
        var text = "Sure <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
        var shown = string.Concat(text.Chunk(3).Select(c => s.Add(new string(c))));
        Assert.Equal("Sure ", shown);
        var (rest, calls) = ToolCallReply.Finish(s);
        Assert.Null(rest);
        Assert.Equal("f", Assert.Single(calls).Name);

        var plain = new ToolCallStream();
        var out1 = plain.Add("a <tool");
        Assert.Equal("a ", out1);
        Assert.Equal("<tools are here", plain.Add("s are here"));
        Assert.Equal("", plain.Add(""));
        Assert.Equal((null, 0), Shape(ToolCallReply.Finish(plain)));
        var tail = new ToolCallStream();
        Assert.Equal("x ", tail.Add("x <tool_ca"));
        Assert.Equal(("<tool_ca", 0), Shape(ToolCallReply.Finish(tail)));
    }

    /// <summary>A ChatML template that renders tools, assistant tool calls and tool results (Qwen2.5's layout).</summary>
    const string ToolTemplate =
        "{%- if tools %}<|im_start|>system\n# Tools\n<tools>\n{%- for tool in tools %}\n{{ tool | tojson }}\n{%- endfor %}\n</tools><|im_end|>\n{% endif %}" +
        "{%- for message in messages %}" +
        "{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n{%- for tc in message.tool_calls %}\n<tool_call>\n{\"name\": \"{{ tc.function.name }}\", \"arguments\": {{ tc.function.arguments }}}\n</tool_call>{%- endfor %}<|im_end|>\n" +
        "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n" +
        "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endif %}{%- endfor %}" +
        "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    [Fact]
    public async Task ToolsAndToolMessagesReachTheTemplate()
    {
        using var dir = new TempDirectory();
        var template = Path.Combine(dir.Path, "tools.jinja");
        File.WriteAllText(template, ToolTemplate);
        await using var server = await TestServer.StartAsync("qwen2", new Osprey.Serving.EngineOptions { MaxBatchSize = 2, MaxModelLen = 256 }, template: template);
        var tools = JsonNode.Parse("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}]")!;
        var messages = JsonNode.Parse("""
            [{"role": "user", "content": "Paris?"},
             {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
             {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
            """)!;
        var elements = messages.AsArray().Select(m => (object?)JsonDocument.Parse(m!.ToJsonString()).RootElement.Clone()).ToList();
        var toolElements = tools.AsArray().Select(t => (object?)JsonDocument.Parse(t!.ToJsonString()).RootElement.Clone()).ToList();
        var rendered = server.Model.Chat.Render(elements, toolElements);
        Assert.Contains("\"get_weather\"", rendered);
        Assert.Contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", rendered);
        Assert.Contains("<tool_response>\nsunny\n</tool_response>", rendered);
        var expectedPrompt = server.Model.EncodeChat(elements, toolElements).Length;

        var body = new JsonObject { ["messages"] = messages.DeepClone(), ["tools"] = tools.DeepClone(), ["tool_choice"] = "auto", ["max_tokens"] = 4, ["temperature"] = 0 };
        var (status, json, text) = await server.PostAsync("/v1/chat/completions", body.ToJsonString());
        Assert.True(status == 200, text);
        Assert.Equal(expectedPrompt, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // tool_choice "none" leaves the tools out of the prompt.
        body["tool_choice"] = "none";
        var (_, none, _) = await server.PostAsync("/v1/chat/completions", body.ToJsonString());
        Assert.Equal(server.Model.EncodeChat(elements).Length, none.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        body["tool_choice"] = JsonNode.Parse("{\"type\": \"function\", \"function\": {\"name\": \"nope\"}}");
        var (bad, badBody, _) = await server.PostAsync("/v1/chat/completions", body.ToJsonString());
        Assert.Equal(400, bad);
        TestServer.AssertError(badBody);
    }
}
