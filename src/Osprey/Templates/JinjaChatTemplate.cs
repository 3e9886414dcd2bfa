using Osprey.Tokenization;
using Osprey.Tokenization.Jinja;

namespace Osprey.Templates;

/// <summary>
/// The model's own Jinja chat template used for training. The full conversation is rendered once (the text
/// inference would see); each assistant message's range in it is then derived by rendering variants:
/// <list type="bullet">
/// <item>its content: the conversation rendered again with that message's content blanked differs from the full
/// rendering in exactly the content's place (common prefix/suffix), wherever the template puts it;</item>
/// <item>its start: the conversation before it rendered with add_generation_prompt is, in a prefix-stable template,
/// a prefix of the full text; the labelled range starts where the two part (never after the content), so text the
/// model must generate itself (Qwen3's empty think block on the final turn) carries loss and the header does not;</item>
/// <item>its end: the conversation up to and including it is a prefix of the full text in a prefix-stable template;
/// where it is not (Qwen3 drops think blocks and adds empty ones by position), the text that follows the content in
/// that rendering (tool calls, end-of-turn token) is matched against the full text after the content.</item>
/// </list>
/// Whitespace after the end-of-turn token (the newline after <c>&lt;|im_end|&gt;</c>) carries no loss.
/// </summary>
internal sealed class JinjaChatTemplate : ChatTemplate
{
    private delegate string RenderFunc(List<object?> messages, IReadOnlyList<object?>? tools, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra);

    private readonly RenderFunc _render;

    private JinjaChatTemplate(RenderFunc render) => _render = render;

    public override string Name => "jinja";

    public static JinjaChatTemplate ForTokenizer(Tokenizer tokenizer, string? templateOrName) =>
        new((messages, tools, agp, extra) => tokenizer.ApplyChatTemplate(messages, new ChatTemplateOptions
        {
            AddGenerationPrompt = agp,
            Tools = tools,
            Extra = extra,
            ChatTemplate = templateOrName,
        }));

    public static JinjaChatTemplate FromSource(string source, IReadOnlyDictionary<string, object?>? variables)
    {
        ArgumentNullException.ThrowIfNull(source);
        var template = JinjaTemplate.Parse(source);
        return new((messages, tools, agp, extra) =>
        {
            var vars = new Dictionary<string, object?>();
            if (variables is not null) foreach (var (k, v) in variables) vars[k] = v;
            if (extra is not null) foreach (var (k, v) in extra) vars[k] = v;
            vars["messages"] = messages;
            if (tools is { Count: > 0 }) vars["tools"] = tools;
            vars["add_generation_prompt"] = agp;
            return template.Render(vars);
        });
    }

    private string Render(List<ChatMessage> messages, IReadOnlyList<object?>? tools, bool agp, IReadOnlyDictionary<string, object?>? extra)
    {
        try
        {
            return _render(messages.Select(m => (object?)m.Fields).ToList(), tools, agp, extra);
        }
        catch (JinjaException e)
        {
            throw new OspreyException($"The chat template rejected the conversation ({e.Message.TrimEnd('.')}); fix the conversation or choose a template with --template.", e);
        }
    }

    /// <summary>Renders, returning null when the template raises (variants may be rejected where the real conversation is not).</summary>
    private string? TryRender(List<ChatMessage> messages, IReadOnlyList<object?>? tools, bool agp, IReadOnlyDictionary<string, object?>? extra)
    {
        try
        {
            return _render(messages.Select(m => (object?)m.Fields).ToList(), tools, agp, extra);
        }
        catch (OspreyException)
        {
            return null;
        }
    }

    private static List<ChatMessage> WithSystem(List<ChatMessage> messages, TemplateOptions options)
    {
        if (options.System is null || (messages.Count > 0 && messages[0].Role == "system")) return messages;
        if (options.System.Length == 0) return messages;
        var system = new ChatMessage { Role = "system", Fields = new() { ["role"] = "system", ["content"] = options.System } };
        return [system, .. messages];
    }

    private protected override string RenderGenerationPrompt(List<ChatMessage> messages, IReadOnlyList<object?>? tools, TemplateOptions options) =>
        Render(WithSystem(messages, options), tools, agp: true, options.Extra);

    private protected override RenderedConversation RenderTraining(List<ChatMessage> messages, IReadOnlyList<object?>? tools, TemplateOptions options)
    {
        var inserted = WithSystem(messages, options);
        var shift = inserted.Count - messages.Count;
        messages = inserted;
        var extra = options.Extra;
        var full = Render(messages, tools, agp: false, extra);
        var spans = new List<LossSpan>();
        var previousEnd = 0;
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role != "assistant") continue;
            var (start, end) = Locate(messages, i, full, previousEnd, tools, extra);
            spans.Add(new LossSpan(start, end, AssistantWeight(messages, i, options.LossScale), i - shift));
            previousEnd = end;
        }
        return new RenderedConversation(full, spans, options.LossScale == LossScale.All ? 1 : 0);
    }

    private (int Start, int End) Locate(List<ChatMessage> messages, int i, string full, int previousEnd, IReadOnlyList<object?>? tools, IReadOnlyDictionary<string, object?>? extra)
    {
        // 1. Where the content lies: blank it (or, when empty, fill it) and diff the renderings.
        var variantMessage = messages[i].WithContent(ChatMessage.ContentText(messages[i].Content).Length > 0 ? "" : "\u0001");
        var variant = new List<ChatMessage>(messages) { [i] = variantMessage };
        var fullVariant = TryRender(variant, tools, agp: false, extra);
        int? contentStart = null, contentEnd = null;
        if (fullVariant is not null && fullVariant != full)
        {
            var (s, e) = DiffRegion(full, fullVariant);
            contentStart = s;
            contentEnd = e;
        }

        // 2. Where the reply starts: the prompt rendered with add_generation_prompt shares a prefix with the full text.
        int? start = null;
        var prompt = TryRender(messages.GetRange(0, i), tools, agp: true, extra);
        if (prompt is not null) start = CommonPrefix(prompt, full);
        if (contentStart is { } cs) start = start is { } st ? Math.Min(st, cs) : cs;
        if (start is not { } replyStart || replyStart < previousEnd)
        {
            if (contentStart is { } cs2 && cs2 >= previousEnd) replyStart = cs2;
            else throw NotLocated(i);
        }

        // 3. Where the turn ends.
        var anchor = Math.Max(replyStart, contentEnd ?? replyStart);
        int turnEnd;
        if (i == messages.Count - 1)
        {
            turnEnd = full.Length;
        }
        else
        {
            var upTo = TryRender(messages.GetRange(0, i + 1), tools, agp: false, extra);
            if (upTo is not null && upTo.Length >= anchor && full.StartsWith(upTo, StringComparison.Ordinal))
            {
                turnEnd = upTo.Length;
            }
            else
            {
                // Not prefix-stable (e.g. Qwen3 renders a last assistant turn with a think block that history turns
                // lack): take what follows the content in the rendering that ends with this message and match it
                // against the full text after the content.
                var upToVariant = TryRender(variant.GetRange(0, i + 1), tools, agp: false, extra);
                if (upTo is null || upToVariant is null) throw NotLocated(i);
                int tailStart;
                if (upToVariant != upTo) tailStart = DiffRegion(upTo, upToVariant).End;
                else if (prompt is not null && upTo.StartsWith(prompt, StringComparison.Ordinal)) tailStart = prompt.Length;
                else throw NotLocated(i);
                var tail = upTo.AsSpan(tailStart).TrimEnd();
                turnEnd = anchor + tail.CommonPrefixLength(full.AsSpan(anchor));
            }
        }
        // The newline (or other whitespace) after the end-of-turn token belongs to the next turn's framing.
        var end = turnEnd;
        while (end > anchor && char.IsWhiteSpace(full[end - 1])) end--;
        if (end < anchor || (contentEnd is { } ce && end < ce)) throw NotLocated(i);
        // A reply with text must leave a trace; an empty range means the template dropped it or moved it elsewhere.
        if (end == replyStart && (ChatMessage.ContentText(messages[i].Content).Trim().Length > 0 || messages[i].ToolCalls.Count > 0)) throw NotLocated(i);
        return (replyStart, end);
    }

    private static OspreyException NotLocated(int index) =>
        new($"Could not locate assistant message {index} in the rendered conversation because the chat template is not prefix-stable for it; pass --template NAME to use a named template instead.");

    internal static int CommonPrefix(string a, string b) => a.AsSpan().CommonPrefixLength(b);

    /// <summary>The [Start, End) range of <paramref name="full"/> that differs from <paramref name="variant"/>.</summary>
    internal static (int Start, int End) DiffRegion(string full, string variant)
    {
        var prefix = CommonPrefix(full, variant);
        var max = Math.Min(full.Length, variant.Length) - prefix;
        var suffix = 0;
        while (suffix < max && full[full.Length - 1 - suffix] == variant[variant.Length - 1 - suffix]) suffix++;
        return (prefix, full.Length - suffix);
    }
}
