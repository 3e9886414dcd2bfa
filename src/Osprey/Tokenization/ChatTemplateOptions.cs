namespace Osprey.Tokenization;

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
