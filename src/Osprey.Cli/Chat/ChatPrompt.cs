using Osprey.Tokenization;

namespace Osprey.Cli.Chat;

/// <summary>
/// Turns a conversation into prompt ids and generated ids back into reply text, the way transformers' chat
/// pipeline does: render with a chat template (generation prompt on), encode, decode without special tokens.
/// </summary>
/// <remarks>
/// Where the template comes from: the tokenizer's own chat template by default; <c>--template FILE</c> (a Jinja
/// file) or <c>--template NAME</c> (one of the tokenizer's named templates, such as <c>tool_use</c>) override it.
/// Any other name goes to <see cref="NamedTemplate"/>, the hook for ms-swift's named templates
/// (Osprey.Templates), which knows none yet.
/// </remarks>
internal sealed class ChatPrompt
{
    private readonly string? _template;

    private ChatPrompt(Tokenizer tokenizer, string? template)
    {
        Tokenizer = tokenizer;
        _template = template;
    }

    /// <summary>The tokenizer that encodes prompts and decodes replies.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>
    /// Loads the tokenizer of <paramref name="folder"/>, failing with a <see cref="UserError"/> that ends with
    /// <paramref name="hint"/> when the folder has no tokenizer.json.
    /// </summary>
    public static Tokenizer LoadTokenizer(string folder, string hint)
    {
        if (!File.Exists(Path.Combine(folder, "tokenizer.json")))
            throw new UserError($"{folder} has no tokenizer.json; {hint}");
        return Tokenizer.Load(folder);
    }

    /// <summary>
    /// The prompt builder for <paramref name="tokenizer"/> (loaded from <paramref name="folder"/>) with the
    /// <c>--template</c> value <paramref name="template"/> (null: the tokenizer's own chat template).
    /// </summary>
    public static ChatPrompt Create(Tokenizer tokenizer, string folder, string? template)
    {
        if (template is null)
        {
            if (tokenizer.ChatTemplateSource is null)
                throw new UserError($"The tokenizer in {folder} has no chat template (no chat_template in tokenizer_config.json and no chat_template.jinja); pass --template with a Jinja template file, or use --input_ids.");
            return new ChatPrompt(tokenizer, null);
        }
        if (File.Exists(template)) return new ChatPrompt(tokenizer, File.ReadAllText(template));
        if (tokenizer.NamedChatTemplates.ContainsKey(template)) return new ChatPrompt(tokenizer, template);
        var named = NamedTemplate(template)
            ?? throw new UserError($"--template {template} is neither a file nor one of the tokenizer's named templates ({(tokenizer.NamedChatTemplates.Count == 0 ? "it has none" : string.Join(", ", tokenizer.NamedChatTemplates.Keys))}); pass a Jinja template file.");
        return new ChatPrompt(tokenizer, named);
    }

    /// <summary>
    /// Hook for ms-swift's named templates (<c>--template qwen</c>, <c>llama3</c>, ...): the Jinja source of the
    /// template called <paramref name="name"/>, or null when unknown. Osprey.Templates will provide them; none
    /// exist yet.
    /// </summary>
    internal static string? NamedTemplate(string name)
    {
        _ = name;
        return null;
    }

    /// <summary>The conversation rendered with the generation prompt appended.</summary>
    public string Render(IReadOnlyList<object?> messages, IReadOnlyList<object?>? tools = null) =>
        Tokenizer.ApplyChatTemplate(messages, new ChatTemplateOptions { AddGenerationPrompt = true, Tools = tools, ChatTemplate = _template });

    /// <summary>
    /// The prompt ids of a conversation. A rendering that already starts with the BOS token is encoded without
    /// special tokens (as transformers does, so BOS is not doubled); otherwise the tokenizer's post-processor
    /// adds whatever it adds by default.
    /// </summary>
    public int[] Encode(IReadOnlyList<object?> messages, IReadOnlyList<object?>? tools = null) => EncodeRendered(Render(messages, tools));

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
