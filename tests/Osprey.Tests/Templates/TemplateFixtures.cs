using System.Text.Json;
using Osprey.Templates;
using Osprey.Tests.Tokenization;

namespace Osprey.Tests.Templates;

/// <summary>Conversations and chat templates shared by the template tests.</summary>
internal static class TemplateFixtures
{
    /// <summary>The chat template and special tokens of a real tokenizer's tokenizer_config.json, without the tokenizer.</summary>
    public static ChatTemplate JinjaFromNpm(string name)
    {
        var path = Path.Combine(NpmTokenizers.Folder(name), "tokenizer_config.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var source = root.GetProperty("chat_template").GetString()!;
        var variables = new Dictionary<string, object?>();
        foreach (var key in new[] { "bos_token", "eos_token", "pad_token", "unk_token" })
        {
            if (!root.TryGetProperty(key, out var v)) continue;
            variables[key] = v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Object => v.GetProperty("content").GetString(),
                _ => null,
            };
        }
        return ChatTemplate.FromJinja(source, variables);
    }

    public static Dictionary<string, object?> Msg(string role, string? content, object? loss = null)
    {
        var m = new Dictionary<string, object?> { ["role"] = role, ["content"] = content };
        if (loss is not null) m["loss"] = loss;
        return m;
    }

    /// <summary>system? + Hi / Hello there! / How are you? / Fine, thanks.</summary>
    public static Conversation TwoTurns(string? system = null)
    {
        var messages = new List<object?>();
        if (system is not null) messages.Add(Msg("system", system));
        messages.Add(Msg("user", "Hi"));
        messages.Add(Msg("assistant", "Hello there!"));
        messages.Add(Msg("user", "How are you?"));
        messages.Add(Msg("assistant", "Fine, thanks."));
        return new Conversation(messages);
    }

    public static Conversation OneTurn() => new([Msg("user", "Hi"), Msg("assistant", "Hello there!")]);

    public static readonly object WeatherTool = JsonDocument.Parse("""
        {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
        """).RootElement.Clone();

    /// <summary>user asks, assistant calls get_weather(Paris), tool answers, assistant replies.</summary>
    public static Conversation ToolCall(string? system = null)
    {
        var json = """
            {"messages": [
              {"role": "user", "content": "Weather in Paris?"},
              {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
              {"role": "tool", "content": "Sunny, 22C"},
              {"role": "assistant", "content": "It is sunny."}
            ]}
            """;
        var c = Conversation.FromJson(json);
        var messages = c.Messages.ToList();
        if (system is not null) messages.Insert(0, Msg("system", system));
        return new Conversation(messages, [WeatherTool]);
    }
}
