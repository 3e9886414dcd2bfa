using Osprey.Tokenization;

namespace Osprey.Templates;

/// <summary>
/// A chat format for training and inference: renders a <see cref="Conversation"/> to text, marks which characters
/// carry loss, and encodes it to ids and labels. Two kinds exist: the model's own Jinja chat template
/// (<see cref="FromTokenizer"/>, the default, so training and inference formats never drift) and ms-swift-style named
/// templates (<see cref="Named"/>: chatml, qwen, qwen3, llama3, llama2, mistral, gemma, phi3, deepseek, default) for
/// models without one. Instances are immutable and thread-safe.
/// </summary>
public abstract class ChatTemplate
{
    private protected ChatTemplate() { }

    /// <summary>The template's name (a named template's name, or "jinja" for the model's own template).</summary>
    public abstract string Name { get; }

    /// <summary>The names <see cref="Named"/> accepts (aliases included).</summary>
    public static IReadOnlyList<string> NamedTemplateNames => NamedTemplateSpec.Names;

    /// <summary>
    /// The template <c>--template</c> selects for a model: null, "" or "auto" → the tokenizer's own chat template;
    /// a named template's name → that template with the tokenizer's BOS/EOS; anything containing Jinja tags
    /// (<c>{%</c> or <c>{{</c>) → that Jinja source rendered with the tokenizer's special tokens.
    /// </summary>
    public static ChatTemplate FromTokenizer(Tokenizer tokenizer, string? template = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (string.IsNullOrWhiteSpace(template) || template.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            if (tokenizer.ChatTemplateSource is null)
                throw new OspreyException($"The tokenizer has no chat template; pass --template NAME with one of {string.Join(", ", NamedTemplateSpec.PrimaryNames)}.");
            return JinjaChatTemplate.ForTokenizer(tokenizer, null);
        }
        if (template.Contains("{%", StringComparison.Ordinal) || template.Contains("{{", StringComparison.Ordinal))
            return JinjaChatTemplate.ForTokenizer(tokenizer, template);
        if (tokenizer.NamedChatTemplates.ContainsKey(template) && !NamedTemplateSpec.TryGet(template, out _))
            return JinjaChatTemplate.ForTokenizer(tokenizer, template);
        return Named(template, NamedTemplateTokens.FromTokenizer(tokenizer));
    }

    /// <summary>A Jinja chat template from its source; <paramref name="variables"/> are passed to every render (e.g. bos_token).</summary>
    public static ChatTemplate FromJinja(string source, IReadOnlyDictionary<string, object?>? variables = null) =>
        JinjaChatTemplate.FromSource(source, variables);

    /// <summary>
    /// An ms-swift-style named template. <paramref name="tokens"/> supplies the BOS/EOS text that some templates
    /// (deepseek, default, and those that add the tokenizer's BOS) need; unknown names throw <see cref="OspreyException"/>.
    /// </summary>
    public static ChatTemplate Named(string name, NamedTemplateTokens? tokens = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!NamedTemplateSpec.TryGet(name.Trim(), out var spec))
            throw new OspreyException($"Unknown template '{name}'; use one of {string.Join(", ", NamedTemplateSpec.PrimaryNames)}, or leave --template out to use the model's own chat template.");
        return new NamedChatTemplate(spec, tokens ?? NamedTemplateTokens.None);
    }

    /// <summary>
    /// Renders a training conversation (its last message must be an assistant message) and marks the characters that
    /// carry loss under <see cref="TemplateOptions.LossScale"/>.
    /// </summary>
    public RenderedConversation Render(Conversation conversation, TemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        options ??= TemplateOptions.Defaults;
        var messages = ChatMessage.Normalize(conversation.Messages);
        CheckRoles(messages);
        if (messages.Count == 0 || messages[^1].Role != "assistant")
            throw new OspreyException(messages.Count == 0
                ? "The conversation has no messages; give each training sample at least a user and an assistant message."
                : $"The conversation ends with a {messages[^1].Role} message, but a training sample must end with an assistant message; add the assistant reply or drop the trailing messages.");
        return RenderTraining(messages, conversation.Tools, options);
    }

    /// <summary>
    /// The inference prompt: the conversation (its last message a user or tool message) followed by the header that
    /// starts the assistant's reply, as apply_chat_template's add_generation_prompt.
    /// </summary>
    public string RenderPrompt(Conversation conversation, TemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        options ??= TemplateOptions.Defaults;
        var messages = ChatMessage.Normalize(conversation.Messages);
        CheckRoles(messages);
        if (messages.Count == 0 || messages[^1].Role is "assistant" or "system")
            throw new OspreyException(messages.Count == 0
                ? "The conversation has no messages; give the prompt at least one user message."
                : $"The conversation ends with a {messages[^1].Role} message, but a prompt must end with a user or tool message; drop the trailing {messages[^1].Role} message.");
        return RenderGenerationPrompt(messages, conversation.Tools, options);
    }

    /// <summary>Renders and tokenizes a training conversation: ids, labels and loss weights (see <see cref="EncodedConversation"/>).</summary>
    public EncodedConversation Encode(Tokenizer tokenizer, Conversation conversation, TemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return EncodedConversation.FromRendered(tokenizer, Render(conversation, options));
    }

    /// <summary>The ids of <see cref="RenderPrompt"/>, without the tokenizer's special tokens when the text already starts with its BOS.</summary>
    public int[] EncodePrompt(Tokenizer tokenizer, Conversation conversation, TemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var text = RenderPrompt(conversation, options);
        var bos = tokenizer.BosToken?.Content;
        var addSpecialTokens = !(!string.IsNullOrEmpty(bos) && text.StartsWith(bos, StringComparison.Ordinal));
        return tokenizer.Encode(text, addSpecialTokens).Ids;
    }

    private protected abstract RenderedConversation RenderTraining(List<ChatMessage> messages, IReadOnlyList<object?>? tools, TemplateOptions options);

    private protected abstract string RenderGenerationPrompt(List<ChatMessage> messages, IReadOnlyList<object?>? tools, TemplateOptions options);

    private static void CheckRoles(List<ChatMessage> messages)
    {
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role is not ("system" or "user" or "assistant" or "tool"))
                throw new OspreyException($"Message {i} has role '{messages[i].Role}'; use system, user, assistant or tool.");
        }
    }

    /// <summary>The weight of assistant message <paramref name="index"/> under the loss scale and its own "loss" key.</summary>
    private protected static double AssistantWeight(List<ChatMessage> messages, int index, LossScale lossScale)
    {
        if (messages[index].Loss is { } loss)
        {
            if (loss < 0 || double.IsNaN(loss))
                throw new OspreyException($"Message {index} has \"loss\": {loss}; use true, false or a non-negative number.");
            return loss;
        }
        if (lossScale != LossScale.LastRound) return 1;
        var last = messages.FindLastIndex(m => m.Role == "assistant");
        return index == last ? 1 : 0;
    }
}
