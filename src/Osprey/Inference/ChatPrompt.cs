using Osprey.Templates;
using Osprey.Tokenization;

namespace Osprey.Inference;

/// <summary>
/// Turns a conversation into prompt ids and generated ids back into reply text, the way transformers' chat
/// pipeline does: render with a chat template (generation prompt on), encode, decode without special tokens.
/// </summary>
/// <remarks>
/// Where the template comes from: the tokenizer's own chat template by default; <c>--template FILE</c> (a Jinja
/// file), <c>--template NAME</c> for one of the tokenizer's named templates (such as <c>tool_use</c>), or else an
/// ms-swift named template (<c>chatml</c>, <c>qwen</c>, <c>llama3</c>, ... from <see cref="ChatTemplate.Named"/>).
/// </remarks>
public sealed class ChatPrompt
{
    private readonly string? _jinja;
    private readonly ChatTemplate? _named;

    private ChatPrompt(Tokenizer tokenizer, string? jinja, ChatTemplate? named = null)
    {
        Tokenizer = tokenizer;
        _jinja = jinja;
        _named = named;
    }

    /// <summary>The tokenizer that encodes prompts and decodes replies.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>
    /// Loads the tokenizer of <paramref name="folder"/>, failing with a <see cref="OspreyException"/> that ends with
    /// <paramref name="hint"/> when the folder has no tokenizer.json.
    /// </summary>
    public static Tokenizer LoadTokenizer(string folder, string hint)
    {
        if (!File.Exists(Path.Combine(folder, "tokenizer.json")))
            throw new OspreyException($"{folder} has no tokenizer.json; {hint}");
        return Tokenizer.Load(folder);
    }

    /// <summary>
    /// The prompt builder for <paramref name="tokenizer"/> (loaded from <paramref name="folder"/>) with the
    /// <c>--template</c> value <paramref name="template"/> (null: the tokenizer's own chat template).
    /// </summary>
    public static ChatPrompt Create(Tokenizer tokenizer, string folder, string? template)
    {
        var names = string.Join(", ", ChatTemplate.NamedTemplateNames);
        if (template is null)
        {
            if (tokenizer.ChatTemplateSource is null)
                throw new OspreyException($"The tokenizer in {folder} has no chat template (no chat_template in tokenizer_config.json and no chat_template.jinja); pass --template with a Jinja template file or one of {names}.");
            return new ChatPrompt(tokenizer, null);
        }
        if (File.Exists(template)) return new ChatPrompt(tokenizer, File.ReadAllText(template));
        if (tokenizer.NamedChatTemplates.ContainsKey(template)) return new ChatPrompt(tokenizer, template);
        if (!ChatTemplate.NamedTemplateNames.Contains(template, StringComparer.Ordinal))
            throw new OspreyException($"--template {template} is not a file, one of {names}, or one of the tokenizer's own named templates ({(tokenizer.NamedChatTemplates.Count == 0 ? "it has none" : string.Join(", ", tokenizer.NamedChatTemplates.Keys))}).");
        return new ChatPrompt(tokenizer, null, ChatTemplate.Named(template, NamedTemplateTokens.FromTokenizer(tokenizer)));
    }

    /// <summary>The conversation rendered with the generation prompt appended.</summary>
    public string Render(IReadOnlyList<object?> messages, IReadOnlyList<object?>? tools = null) =>
        _named is not null
            ? _named.RenderPrompt(new Conversation(messages, tools))
            : Tokenizer.ApplyChatTemplate(messages, new ChatTemplateOptions { AddGenerationPrompt = true, Tools = tools, ChatTemplate = _jinja });

    /// <summary>
    /// The prompt ids of a conversation. A rendering that already starts with the BOS token is encoded without
    /// special tokens (as transformers does, so BOS is not doubled); otherwise the tokenizer's post-processor
    /// adds whatever it adds by default.
    /// </summary>
    public int[] Encode(IReadOnlyList<object?> messages, IReadOnlyList<object?>? tools = null) =>
        _named is not null ? _named.EncodePrompt(Tokenizer, new Conversation(messages, tools)) : EncodeRendered(Render(messages, tools));

    /// <summary>Encodes an already rendered prompt; see <see cref="Encode"/>.</summary>
    public int[] EncodeRendered(string rendered)
    {
        var bos = Tokenizer.BosToken?.Content;
        var startsWithBos = !string.IsNullOrEmpty(bos) && rendered.StartsWith(bos, StringComparison.Ordinal);
        return Tokenizer.EncodeIds(rendered, addSpecialTokens: !startsWithBos);
    }

    /// <summary>
    /// The end-of-sequence ids to stop on: the model's (config.json and generation_config.json) plus the
    /// tokenizer's eos token.
    /// </summary>
    public IReadOnlyList<int> StopIds(IReadOnlyList<int> modelEos)
    {
        var ids = new List<int>(modelEos);
        if (Tokenizer.EosToken?.Id is { } eos && !ids.Contains(eos)) ids.Add(eos);
        return ids;
    }

    /// <summary>
    /// Reply text of generated ids: decoded with special tokens skipped, and without a final stop id even when
    /// the tokenizer does not mark it special.
    /// </summary>
    public string DecodeReply(IReadOnlyList<int> ids, IReadOnlyList<int> stopIds)
    {
        if (ids.Count > 0 && stopIds.Contains(ids[^1])) ids = ids.Take(ids.Count - 1).ToArray();
        return Tokenizer.Decode(ids, skipSpecialTokens: true);
    }
}
