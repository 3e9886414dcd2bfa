using Osprey.Tokenization;

namespace Osprey.Templates;

/// <summary>
/// A training sample: token ids, labels (the id where the token carries loss, -100 elsewhere; the first label is
/// always -100 as in ms-swift), per-token loss weights and the rendered text the ids encode.
/// </summary>
public sealed class EncodedConversation
{
    internal EncodedConversation(int[] inputIds, int[] labels, float[] lossWeights, TokenOffset[] offsets, string text, bool addSpecialTokens, bool truncated)
    {
        InputIds = inputIds;
        Labels = labels;
        LossWeights = lossWeights;
        Offsets = offsets;
        Text = text;
        AddSpecialTokens = addSpecialTokens;
        Truncated = truncated;
    }

    /// <summary>The label of a token without loss.</summary>
    public const int IgnoreIndex = -100;

    /// <summary>Token ids of <see cref="Text"/>.</summary>
    public int[] InputIds { get; }

    /// <summary>Same length as <see cref="InputIds"/>; -100 where no loss.</summary>
    public int[] Labels { get; }

    /// <summary>Per-token loss weight (0 where the label is -100); all 1 or 0 unless a message sets a fractional <c>loss</c>.</summary>
    public float[] LossWeights { get; }

    /// <summary>Each token's [Start, End) span in <see cref="Text"/>; (0, 0) for tokens the tokenizer's post-processor added.</summary>
    public TokenOffset[] Offsets { get; }

    /// <summary>The rendered conversation (the whole of it, also after truncation).</summary>
    public string Text { get; }

    /// <summary>Whether the text was encoded with the tokenizer's special tokens (false when the template wrote the BOS itself).</summary>
    public bool AddSpecialTokens { get; }

    /// <summary>True when <see cref="Truncate"/> cut tokens off.</summary>
    public bool Truncated { get; }

    /// <summary>Number of tokens.</summary>
    public int Length => InputIds.Length;

    /// <summary>Number of tokens that carry loss.</summary>
    public int LabelledTokenCount => Labels.Count(l => l != IgnoreIndex);

    /// <summary>
    /// Applies <c>--max_length</c> with <c>--truncation_strategy</c> as ms-swift does: a sample no longer than
    /// <paramref name="maxLength"/> comes back unchanged; a longer one is dropped (<see cref="TruncationStrategy.Delete"/>,
    /// returns null), keeps its last <paramref name="maxLength"/> tokens (<see cref="TruncationStrategy.Left"/>) or its first
    /// (<see cref="TruncationStrategy.Right"/>). Labels and weights are cut with the ids.
    /// </summary>
    public EncodedConversation? Truncate(int maxLength, TruncationStrategy strategy)
    {
        if (maxLength <= 0) throw new OspreyException($"max_length must be positive (got {maxLength}); pass --max_length N with N > 0.");
        if (Length <= maxLength) return this;
        int start;
        switch (strategy)
        {
            case TruncationStrategy.Delete: return null;
            case TruncationStrategy.Left: start = Length - maxLength; break;
            case TruncationStrategy.Right: start = 0; break;
            default: throw new ArgumentOutOfRangeException(nameof(strategy));
        }
        return new EncodedConversation(
            InputIds[start..(start + maxLength)], Labels[start..(start + maxLength)], LossWeights[start..(start + maxLength)],
            Offsets[start..(start + maxLength)], Text, AddSpecialTokens, truncated: true);
    }

    /// <summary>Tokenizes a rendered conversation once and labels each token by the span its first char lies in.</summary>
    internal static EncodedConversation FromRendered(Tokenizer tokenizer, RenderedConversation rendered)
    {
        var text = rendered.Text;
        var bos = tokenizer.BosToken?.Content;
        // transformers' apply_chat_template never adds special tokens because templates write the BOS themselves;
        // a template that does not (while the tokenizer has one) gets the tokenizer's own post-processing.
        var addSpecialTokens = !(!string.IsNullOrEmpty(bos) && text.StartsWith(bos, StringComparison.Ordinal));
        var encoding = tokenizer.Encode(text, addSpecialTokens);
        var charWeights = new double[text.Length];
        if (rendered.BaseWeight != 0) Array.Fill(charWeights, rendered.BaseWeight);
        foreach (var span in rendered.Spans)
        {
            for (var c = span.Start; c < span.End; c++) charWeights[c] = span.Weight;
        }
        var ids = encoding.Ids;
        var labels = new int[ids.Length];
        var weights = new float[ids.Length];
        for (var t = 0; t < ids.Length; t++)
        {
            var offset = encoding.Offsets[t];
            var w = offset.End > offset.Start && offset.Start < text.Length ? charWeights[offset.Start] : rendered.BaseWeight;
            labels[t] = w > 0 ? ids[t] : IgnoreIndex;
            weights[t] = w > 0 ? (float)w : 0f;
        }
        if (labels.Length > 0)
        {
            // Nothing predicts the first token (ms-swift sets labels[0] = -100 too).
            labels[0] = IgnoreIndex;
            weights[0] = 0;
        }
        return new EncodedConversation(ids, labels, weights, encoding.Offsets, text, addSpecialTokens, truncated: false);
    }
}
