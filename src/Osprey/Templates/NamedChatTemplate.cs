using System.Text;
using Osprey.Tokenization.Jinja;

namespace Osprey.Templates;

/// <summary>
/// An ms-swift-style template (see <see cref="NamedTemplateSpec"/>) assembled the way ms-swift's
/// <c>Template._swift_encode</c> does (swift/llm/template/base.py): prefix or system prefix, then per round the
/// prompt with the query, the response, and <c>chat_sep</c> between rounds or <c>suffix</c> after the last one.
/// Loss follows ms-swift: the response and the suffix carry it; in earlier rounds the part of <c>chat_sep</c> that
/// equals the suffix carries it too (ms-swift's <c>_add_dynamic_eos</c>), so every labelled reply ends with its
/// end-of-turn token. Whitespace after that token carries no loss.
/// </summary>
internal sealed class NamedChatTemplate(NamedTemplateSpec spec, NamedTemplateTokens tokens) : ChatTemplate
{
    private enum Part { Other, Response, Suffix, Sep }

    private readonly record struct Segment(string Text, Part Kind, int MessageIndex);

    public override string Name => spec.Name;

    private protected override string RenderGenerationPrompt(List<ChatMessage> messages, IReadOnlyList<object?>? tools, TemplateOptions options) =>
        string.Concat(Assemble(messages, tools, options, training: false).Select(s => s.Text));

    private protected override RenderedConversation RenderTraining(List<ChatMessage> messages, IReadOnlyList<object?>? tools, TemplateOptions options)
    {
        var segments = Assemble(messages, tools, options, training: true);
        var baseWeight = options.LossScale == LossScale.All ? 1.0 : 0.0;
        var suffixStop = Fill(spec.Suffix, null, null).TrimEnd();
        var text = new StringBuilder();
        var spans = new List<LossSpan>();
        foreach (var segment in segments)
        {
            var start = text.Length;
            text.Append(segment.Text);
            if (segment.Kind == Part.Other) continue;
            var weight = AssistantWeight(messages, segment.MessageIndex, options.LossScale);
            var labelled = segment.Kind switch
            {
                Part.Response => segment.Text.Length,
                Part.Suffix => segment.Text.TrimEnd().Length,
                _ => suffixStop.Length > 0 && segment.Text.StartsWith(suffixStop, StringComparison.Ordinal) ? suffixStop.Length : 0,
            };
            if (labelled == 0 && segment.Kind != Part.Response) continue;
            var end = start + labelled;
            if (spans.Count > 0 && spans[^1].End == start && spans[^1].MessageIndex == segment.MessageIndex && spans[^1].Weight == weight)
                spans[^1] = spans[^1] with { End = end };
            else
                spans.Add(new LossSpan(start, end, weight, segment.MessageIndex));
        }
        return new RenderedConversation(text.ToString(), spans, baseWeight);
    }

    private List<Segment> Assemble(List<ChatMessage> messages, IReadOnlyList<object?>? tools, TemplateOptions options, bool training)
    {
        var first = messages.Count > 0 && messages[0].Role == "system" ? 1 : 0;
        for (var i = first; i < messages.Count; i++)
        {
            if (messages[i].Role == "system")
                throw new OspreyException($"Message {i} is a system message, but template '{spec.Name}' takes a system prompt only as the first message; merge it into the first message.");
        }
        var system = first == 1 ? messages[0].Text : options.System ?? spec.DefaultSystem ?? "";
        if (system.Length > 0 && !spec.SupportsSystem)
            throw new OspreyException($"Template '{spec.Name}' has no system prompt; remove the system message (or --system) or choose another template.");
        if (tools is { Count: > 0 })
        {
            if (spec.Tools != ToolFormat.Hermes)
                throw new OspreyException($"Template '{spec.Name}' has no tool format; leave --template out to use the model's own chat template, or use qwen or qwen3.");
            system = HermesSystem(system, tools);
        }

        // Check the order: user, assistant, (tool..., assistant)..., user, ...
        var previous = "";
        for (var i = first; i < messages.Count; i++)
        {
            var role = messages[i].Role;
            var ok = role switch
            {
                "user" => previous is "" or "assistant",
                "assistant" => previous is "user" or "tool",
                _ => previous is "assistant" or "tool",
            };
            if (role == "tool" && spec.Tools != ToolFormat.Hermes)
                throw new OspreyException($"Message {i} is a tool message, but template '{spec.Name}' has no tool format; leave --template out to use the model's own chat template, or use qwen or qwen3.");
            if (!ok)
                throw new OspreyException(previous == ""
                    ? $"Message {i} is a {role} message, but a conversation must start with a user message (after an optional system message); reorder the messages."
                    : $"Message {i} is a {role} message right after a {previous} message, but template '{spec.Name}' needs user and assistant turns to alternate (tool results only after an assistant); reorder or merge the messages.");
            previous = role;
        }

        // The responses as the template writes them.
        var responses = new Dictionary<int, string>();
        var stripHistoryThinking = !training || options.LossScale == LossScale.LastRound;
        for (var i = first; i < messages.Count; i++)
        {
            if (messages[i].Role != "assistant") continue;
            var text = messages[i].Text;
            if (messages[i].ToolCalls.Count > 0)
            {
                if (spec.Tools != ToolFormat.Hermes)
                    throw new OspreyException($"Message {i} has tool_calls, but template '{spec.Name}' has no tool format; leave --template out to use the model's own chat template, or use qwen or qwen3.");
                text = HermesToolCalls(text, messages[i].ToolCalls, i);
            }
            if (spec.NoThinkPrefix is { } noThink)
            {
                // ms-swift ThinkingTemplate._swift_prepare_inputs (swift/llm/template/template/utils.py).
                if (!text.StartsWith("<think>", StringComparison.Ordinal) && !text.StartsWith(noThink, StringComparison.Ordinal)) text = noThink + text;
                if (stripHistoryThinking && i != messages.Count - 1)
                {
                    var cut = text.LastIndexOf("</think>", StringComparison.Ordinal);
                    text = (cut >= 0 ? text[(cut + "</think>".Length)..] : text).Trim();
                }
            }
            if (spec.SystemInFirstUser) text = text.Trim('\n');
            responses[i] = text;
        }

        // Rounds: a user message or a run of tool messages, then the assistant reply (absent at inference).
        var rounds = new List<(string Query, bool IsTool, int Response)>();
        for (var i = first; i < messages.Count; i++)
        {
            switch (messages[i].Role)
            {
                case "user":
                {
                    var query = messages[i].Text;
                    if (spec.SystemInFirstUser && rounds.Count == 0 && system.Length > 0) query = system + "\n\n" + query;
                    rounds.Add((query, false, -1));
                    break;
                }
                case "tool":
                {
                    var results = new List<string>();
                    for (; i < messages.Count && messages[i].Role == "tool"; i++) results.Add($"<tool_response>\n{messages[i].Text}\n</tool_response>");
                    i--;
                    rounds.Add((string.Join("\n", results), true, -1));
                    break;
                }
                default:
                    rounds[^1] = rounds[^1] with { Response = i };
                    break;
            }
        }

        var segments = new List<Segment>();
        if (spec.AutoAddBos && tokens.TokenizerAddsBos && tokens.Bos is { Length: > 0 } bos) segments.Add(new(bos, Part.Other, -1));
        var usePrefix = system.Length == 0 || spec.SystemPrompt is not null || spec.SystemInFirstUser;
        segments.Add(new(usePrefix ? Fill(spec.Prefix, null, null) : Fill(spec.SystemPrefix!, system, null), Part.Other, -1));
        for (var r = 0; r < rounds.Count; r++)
        {
            var (query, isTool, response) = rounds[r];
            var prompt = !isTool && spec.SystemPrompt is not null && r == rounds.Count - 1 && system.Length > 0
                ? Fill(spec.SystemPrompt, system, query)
                : Fill(spec.Prompt, null, query);
            segments.Add(new(prompt, Part.Other, -1));
            if (response < 0) continue;
            var reply = responses[response];
            segments.Add(new(reply, Part.Response, response));
            if (r < rounds.Count - 1)
            {
                if (spec.ChatSep is null)
                    throw new OspreyException($"Template '{spec.Name}' supports a single round only; split the conversation into one sample per round.");
                segments.Add(new(Fill(spec.ChatSep, null, null), Part.Sep, response));
            }
            else if (training && !EndsWithStopWord(reply))
            {
                segments.Add(new(Fill(spec.Suffix, null, null), Part.Suffix, response));
            }
        }
        return segments;
    }

    /// <summary>ms-swift adds no suffix to a reply that already ends with a stop word (the suffix or the EOS).</summary>
    private bool EndsWithStopWord(string reply)
    {
        var stop = Fill(spec.Suffix, null, null).Trim();
        if (stop.Length > 0 && reply.EndsWith(stop, StringComparison.Ordinal)) return true;
        return tokens.Eos is { Length: > 0 } eos && reply.EndsWith(eos, StringComparison.Ordinal);
    }

    /// <summary>Replaces the placeholders of a template piece (never inside the inserted text).</summary>
    private string Fill(string piece, string? system, string? query)
    {
        var sb = new StringBuilder();
        var i = 0;
        while (i < piece.Length)
        {
            var open = piece.IndexOf("{{", i, StringComparison.Ordinal);
            if (open < 0)
            {
                sb.Append(piece, i, piece.Length - i);
                break;
            }
            sb.Append(piece, i, open - i);
            var close = piece.IndexOf("}}", open, StringComparison.Ordinal);
            var name = piece[(open + 2)..close];
            sb.Append(name switch
            {
                "SYSTEM" => system ?? "",
                "QUERY" => query ?? "",
                "BOS" => tokens.Bos ?? throw MissingToken("BOS"),
                "EOS" => tokens.Eos ?? throw MissingToken("EOS"),
                _ => throw new InvalidOperationException($"unknown placeholder {name}"),
            });
            i = close + 2;
        }
        return sb.ToString();
    }

    private OspreyException MissingToken(string which) =>
        new($"Template '{spec.Name}' writes the tokenizer's {which} token, but none is known; load the model's tokenizer (or pass NamedTemplateTokens) with a {which.ToLowerInvariant()}_token.");

    private static string ToJson(object? value) => Json.Dumps(Py.FromExternal(value), null, ensureAscii: false, null, sortKeys: false);

    /// <summary>ms-swift's hermes agent template (swift/plugin/agent_template/hermes.py) as Qwen2.5/Qwen3's chat templates write it.</summary>
    private static string HermesSystem(string system, IReadOnlyList<object?> tools)
    {
        var sb = new StringBuilder();
        if (system.Length > 0) sb.Append(system).Append("\n\n");
        sb.Append("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n");
        sb.Append("You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        foreach (var tool in tools)
        {
            var plain = Plain.From(tool);
            if (plain is not Dictionary<string, object?> d || !(d.GetValueOrDefault("type") is "function" && d.ContainsKey("function")))
                plain = new Dictionary<string, object?> { ["type"] = "function", ["function"] = plain };
            sb.Append('\n').Append(ToJson(plain));
        }
        sb.Append("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n");
        sb.Append("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
        return sb.ToString();
    }

    private static string HermesToolCalls(string content, IReadOnlyList<object?> toolCalls, int index)
    {
        var sb = new StringBuilder(content);
        for (var k = 0; k < toolCalls.Count; k++)
        {
            var call = toolCalls[k] as Dictionary<string, object?>;
            if (call?.GetValueOrDefault("function") is Dictionary<string, object?> function) call = function;
            if (call?.GetValueOrDefault("name") is not string name)
                throw new OspreyException($"Message {index} has a tool call without a function name; write tool_calls as [{{\"type\": \"function\", \"function\": {{\"name\": ..., \"arguments\": ...}}}}].");
            var arguments = call.GetValueOrDefault("arguments");
            if (k > 0 || content.Length > 0) sb.Append('\n');
            sb.Append("<tool_call>\n{\"name\": \"").Append(name).Append("\", \"arguments\": ");
            sb.Append(arguments is string s ? s : ToJson(arguments ?? new Dictionary<string, object?>()));
            sb.Append("}\n</tool_call>");
        }
        return sb.ToString();
    }
}
