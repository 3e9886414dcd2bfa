using Osprey.Tokenization.Jinja;

namespace Osprey.Tokenization;

public sealed partial class Tokenizer
{
    /// <summary>
    /// Renders a conversation with the tokenizer's chat template the way transformers' apply_chat_template
    /// does. Messages (and tools/documents) are dictionaries, lists, primitives or <see cref="System.Text.Json.JsonElement"/>s.
    /// Throws <see cref="OspreyException"/> when the tokenizer has no chat template and none is given.
    /// </summary>
    public string ApplyChatTemplate(IReadOnlyList<object?> messages, ChatTemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        options ??= new ChatTemplateOptions();
        if (options.AddGenerationPrompt && options.ContinueFinalMessage)
            throw new OspreyException("add_generation_prompt and continue_final_message cannot both be set: the first starts a new assistant turn, the second continues the last message.");
        var source = ResolveTemplate(options);
        var template = _templates.GetOrAdd(source, JinjaTemplate.Parse);
        var variables = new Dictionary<string, object?>(_templateSpecialTokens, StringComparer.Ordinal);
        if (options.Extra is not null)
        {
            foreach (var (k, v) in options.Extra) variables[k] = v;
        }
        variables["messages"] = messages;
        variables["tools"] = options.Tools;
        variables["documents"] = options.Documents;
        variables["add_generation_prompt"] = options.AddGenerationPrompt;
        var rendered = template.Render(variables);
        return options.ContinueFinalMessage ? CutAfterFinalMessage(rendered, messages) : rendered;
    }

    private string ResolveTemplate(ChatTemplateOptions options)
    {
        if (options.ChatTemplate is { } given)
        {
            if (NamedChatTemplates.TryGetValue(given, out var named)) return named;
            if (given == "default" && ChatTemplateSource is not null) return ChatTemplateSource;
            if (given.Contains("{%", StringComparison.Ordinal) || given.Contains("{{", StringComparison.Ordinal)) return given;
            throw new OspreyException($"Chat template '{given}' is neither a template nor one of this tokenizer's named templates ({string.Join(", ", NamedChatTemplates.Keys.Prepend("default"))}).");
        }
        if (options.Tools is not null && NamedChatTemplates.TryGetValue("tool_use", out var toolUse)) return toolUse;
        return ChatTemplateSource ?? throw new OspreyException(
            $"The tokenizer{(SourceDirectory is null ? "" : " in " + SourceDirectory)} has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja); pass --template with a template name such as chatml.");
    }

    /// <summary>continue_final_message: cut the rendering right after the final message's content, as transformers does.</summary>
    private static string CutAfterFinalMessage(string rendered, IReadOnlyList<object?> messages)
    {
        if (messages.Count == 0) throw new OspreyException("continue_final_message needs at least one message.");
        var content = FinalMessageText(messages[^1]);
        var stripped = content.Trim();
        var at = rendered.LastIndexOf(stripped, StringComparison.Ordinal);
        if (stripped.Length == 0 || at < 0)
            throw new OspreyException("continue_final_message is set but the final message does not appear in the rendered chat; the chat template changes it, so it cannot be continued.");
        var lead = content.TrimStart();
        if (at + lead.Length <= rendered.Length && string.CompareOrdinal(rendered, at, lead, 0, lead.Length) == 0 && lead == content[(content.Length - lead.Length)..])
        {
            return rendered[..(at + lead.Length)];
        }
        return rendered[..(at + stripped.Length)];
    }

    private static string FinalMessageText(object? message)
    {
        object? content = message switch
        {
            System.Text.Json.JsonElement e when e.ValueKind == System.Text.Json.JsonValueKind.Object && e.TryGetProperty("content", out var c) => c,
            IReadOnlyDictionary<string, object?> d => d.GetValueOrDefault("content"),
            System.Collections.IDictionary d => d["content"],
            _ => null,
        };
        switch (content)
        {
            case string s:
                return s;
            case System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.String } js:
                return js.GetString()!;
            case System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.Array } ja:
                foreach (var block in ja.EnumerateArray().Reverse())
                {
                    if (block.ValueKind == System.Text.Json.JsonValueKind.Object && block.TryGetProperty("text", out var text)) return text.GetString() ?? "";
                }
                break;
            case System.Collections.IEnumerable list:
                foreach (var block in list.Cast<object?>().Reverse())
                {
                    if (block is IReadOnlyDictionary<string, object?> d && d.TryGetValue("text", out var text)) return text?.ToString() ?? "";
                }
                break;
        }
        throw new OspreyException("continue_final_message is set but the final message has no text content to continue.");
    }
}
