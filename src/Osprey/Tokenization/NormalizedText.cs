using System.Text;

namespace Osprey.Tokenization;

/// <summary>
/// Text moving through the tokenizer pipeline together with, for each UTF-16 char, the [start, end) span of the
/// original input it came from (null arrays = unchanged text starting at <see cref="Offset"/>).
/// </summary>
internal sealed class NormalizedText
{
    public NormalizedText(string text, int offset)
    {
        Text = text;
        Offset = offset;
    }

    public NormalizedText(string text, int[] starts, int[] ends, int offset)
    {
        Text = text;
        Starts = starts;
        Ends = ends;
        Offset = offset;
    }

    public string Text { get; }

    /// <summary>Original start of each char, or null for the identity mapping.</summary>
    public int[]? Starts { get; }

    /// <summary>Original end of each char, or null for the identity mapping.</summary>
    public int[]? Ends { get; }

    /// <summary>For the identity mapping, where the text starts in the original; otherwise the original start of the whole span.</summary>
    public int Offset { get; }

    public int Length => Text.Length;

    public int OriginalStart(int i) => Starts is null ? Offset + i : Starts[i];

    public int OriginalEnd(int i) => Ends is null ? Offset + i + 1 : Ends[i];

    /// <summary>Original end of the whole code point starting at char i (both halves of a surrogate pair).</summary>
    public int OriginalCodePointEnd(int i) =>
        char.IsHighSurrogate(Text[i]) && i + 1 < Length && char.IsLowSurrogate(Text[i + 1]) ? OriginalEnd(i + 1) : OriginalEnd(i);

    /// <summary>Original position where this text begins (for empty text: where it would be).</summary>
    public int OriginalBegin => Length == 0 || Starts is null ? Offset : Starts[0];

    public NormalizedText Slice(int start, int end)
    {
        if (start == 0 && end == Length) return this;
        if (Starts is null) return new NormalizedText(Text.Substring(start, end - start), Offset + start);
        var offset = start < Length ? Starts[start] : Offset;
        return new NormalizedText(Text.Substring(start, end - start), Starts[start..end], Ends![start..end], offset);
    }
}

/// <summary>Builds a <see cref="NormalizedText"/> char by char with alignments.</summary>
internal sealed class NormalizedTextBuilder
{
    private readonly StringBuilder _text;
    private readonly List<int> _starts;
    private readonly List<int> _ends;
    private readonly int _offset;

    public NormalizedTextBuilder(int capacity, int offset)
    {
        _text = new StringBuilder(capacity);
        _starts = new List<int>(capacity);
        _ends = new List<int>(capacity);
        _offset = offset;
    }

    public void Append(char c, int start, int end)
    {
        _text.Append(c);
        _starts.Add(start);
        _ends.Add(end);
    }

    public void Append(ReadOnlySpan<char> s, int start, int end)
    {
        _text.Append(s);
        for (var i = 0; i < s.Length; i++)
        {
            _starts.Add(start);
            _ends.Add(end);
        }
    }

    /// <summary>Copies chars [from, to) of a source with their alignments.</summary>
    public void AppendFrom(NormalizedText source, int from, int to)
    {
        _text.Append(source.Text, from, to - from);
        for (var i = from; i < to; i++)
        {
            _starts.Add(source.OriginalStart(i));
            _ends.Add(source.OriginalEnd(i));
        }
    }

    public NormalizedText Build() => new(_text.ToString(), _starts.ToArray(), _ends.ToArray(), _starts.Count > 0 ? _starts[0] : _offset);
}
