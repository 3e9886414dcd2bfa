namespace Osprey.Inference;

/// <summary>
/// Turns tokens arriving one by one into text increments. Each step decodes the whole reply so far and hands
/// out only what was not handed out before. A byte-level token can end in the middle of a UTF-8 character,
/// which decodes to U+FFFD; such a tail is held back until the character completes (or the reply ends), so an
/// incomplete character is never printed.
/// </summary>
public sealed class StreamingText(Func<IReadOnlyList<int>, string> decode)
{
    private const char Replacement = '\uFFFD';
    private readonly List<int> _ids = [];
    private int _emitted;

    /// <summary>The ids received so far.</summary>
    public IReadOnlyList<int> Ids => _ids;

    /// <summary>Adds a token; returns the newly stable text (often empty).</summary>
    public string Add(int id)
    {
        _ids.Add(id);
        var text = decode(_ids).TrimEnd(Replacement);
        // Never split a surrogate pair between two increments.
        var end = text.Length > 0 && char.IsHighSurrogate(text[^1]) ? text.Length - 1 : text.Length;
        return Take(text, end);
    }

    /// <summary>The reply is over: returns everything not yet handed out, a trailing U+FFFD included.</summary>
    public string Finish()
    {
        var text = decode(_ids);
        return Take(text, text.Length);
    }

    private string Take(string text, int end)
    {
        if (end <= _emitted) return string.Empty;
        var delta = text[_emitted..end];
        _emitted = end;
        return delta;
    }
}
