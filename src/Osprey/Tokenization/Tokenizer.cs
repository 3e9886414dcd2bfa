namespace Osprey.Tokenization;

/// <summary>
/// A Hugging Face fast tokenizer loaded from <c>tokenizer.json</c> (plus <c>tokenizer_config.json</c>,
/// <c>special_tokens_map.json</c> and the chat template from <c>chat_template.jinja</c>/<c>chat_template.json</c>
/// or tokenizer_config.json), encoding and decoding exactly as transformers does. Thread-safe.
/// </summary>
public sealed partial class Tokenizer
{
    /// <summary>Loads the tokenizer files of a model folder (a folder with only tokenizer files is fine).</summary>
    public static Tokenizer Load(string directory) => throw new NotImplementedException();

    /// <summary>The folder it was loaded from, or null when built from strings.</summary>
    public string? SourceDirectory { get; private set; }

    /// <summary>One more than the largest token id (model vocabulary plus added tokens).</summary>
    public int VocabSize => throw new NotImplementedException();

    /// <summary>bos/eos/pad/unk tokens as tokenizer_config.json (or special_tokens_map.json) names them; null when unset.</summary>
    public SpecialToken? BosToken { get; private set; }

    /// <inheritdoc cref="BosToken"/>
    public SpecialToken? EosToken { get; private set; }

    /// <inheritdoc cref="BosToken"/>
    public SpecialToken? PadToken { get; private set; }

    /// <inheritdoc cref="BosToken"/>
    public SpecialToken? UnkToken { get; private set; }

    /// <summary>The default chat template source, or null when the tokenizer has none.</summary>
    public string? ChatTemplateSource { get; private set; }

    /// <summary>Named chat templates (e.g. "tool_use") besides the default one.</summary>
    public IReadOnlyDictionary<string, string> NamedChatTemplates { get; private set; } = new Dictionary<string, string>();

    /// <summary>
    /// Variables transformers passes to every chat template besides messages: bos_token, eos_token, unk_token,
    /// pad_token and the other named special tokens from tokenizer_config.json.
    /// </summary>
    public IReadOnlyDictionary<string, object?> TemplateSpecialTokens => throw new NotImplementedException();

    /// <summary>Encodes text; <paramref name="addSpecialTokens"/> runs the post-processor (BOS/EOS) as transformers' default does.</summary>
    public Encoding Encode(string text, bool addSpecialTokens = true) => throw new NotImplementedException();

    /// <summary>Token ids only.</summary>
    public int[] EncodeIds(string text, bool addSpecialTokens = true) => Encode(text, addSpecialTokens).Ids;

    /// <summary>Encodes many texts on all cores; the result is in input order.</summary>
    public Encoding[] EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, int maxDegreeOfParallelism = -1) => throw new NotImplementedException();

    /// <summary>
    /// Decodes ids to text as transformers' <c>decode</c> does (decoder pipeline, then clean_up_tokenization_spaces
    /// when the config asks for it unless overridden).
    /// </summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null) => throw new NotImplementedException();

    /// <summary>The token string of an id (vocabulary or added token), or null when out of range.</summary>
    public string? IdToToken(int id) => throw new NotImplementedException();

    /// <summary>The id of a token string (vocabulary or added token), or null.</summary>
    public int? TokenToId(string token) => throw new NotImplementedException();

    /// <summary>True for added tokens marked special (skipped by <c>skip_special_tokens</c>).</summary>
    public bool IsSpecial(int id) => throw new NotImplementedException();

    /// <summary>
    /// Renders a conversation with the tokenizer's chat template the way transformers' apply_chat_template
    /// does. Messages (and tools/documents) are dictionaries, lists, primitives or <see cref="System.Text.Json.JsonElement"/>s.
    /// Throws <see cref="OspreyException"/> when the tokenizer has no chat template and none is given.
    /// </summary>
    public string ApplyChatTemplate(IReadOnlyList<object?> messages, ChatTemplateOptions? options = null) => throw new NotImplementedException();
}

/// <summary>A named special token and its id (null when the vocabulary lacks it).</summary>
public sealed record SpecialToken(string Content, int? Id);

/// <summary>Ids of an encoded text with each token's [Start, End) span in UTF-16 chars of the input.</summary>
public sealed record Encoding(int[] Ids, TokenOffset[] Offsets);

/// <summary>A token's [Start, End) span in UTF-16 chars of the original text; special tokens added by the post-processor have (0, 0).</summary>
public readonly record struct TokenOffset(int Start, int End);

/// <summary>Options of <see cref="Tokenizer.ApplyChatTemplate"/>, mirroring apply_chat_template's arguments.</summary>
public sealed class ChatTemplateOptions
{
    /// <summary>Append the header that starts an assistant turn.</summary>
    public bool AddGenerationPrompt { get; init; }

    /// <summary>Leave the final message open (cut the rendering right after its content) so generation continues it.</summary>
    public bool ContinueFinalMessage { get; init; }

    /// <summary>Tool (function) schemas, passed to the template as <c>tools</c>.</summary>
    public IReadOnlyList<object?>? Tools { get; init; }

    /// <summary>Documents for retrieval-augmented templates, passed as <c>documents</c>.</summary>
    public IReadOnlyList<object?>? Documents { get; init; }

    /// <summary>A template source or the name of one of the tokenizer's named templates; null = the default template.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>Extra template variables such as <c>enable_thinking</c>.</summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }
}
