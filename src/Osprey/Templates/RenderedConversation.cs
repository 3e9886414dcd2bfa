namespace Osprey.Templates;

/// <summary>
/// A conversation rendered to text with the ranges that carry loss. Characters outside every span carry
/// <see cref="BaseWeight"/> (1 for <c>--loss_scale all</c>, else 0).
/// </summary>
public sealed class RenderedConversation
{
    internal RenderedConversation(string text, IReadOnlyList<LossSpan> spans, double baseWeight)
    {
        Text = text;
        Spans = spans;
        BaseWeight = baseWeight;
    }

    /// <summary>The full text, exactly what inference-side rendering of the same messages produces.</summary>
    public string Text { get; }

    /// <summary>The assistant ranges, in text order, not overlapping.</summary>
    public IReadOnlyList<LossSpan> Spans { get; }

    /// <summary>The weight of text outside every span.</summary>
    public double BaseWeight { get; }

    /// <summary>The text of every span with a positive weight, in order (for inspection and tests).</summary>
    public IReadOnlyList<string> LabelledTexts => Spans.Where(s => s.Weight > 0).Select(s => Text[s.Start..s.End]).ToList();
}
