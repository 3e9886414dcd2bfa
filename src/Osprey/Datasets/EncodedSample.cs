using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>
/// One encoded training sample: token ids, labels (-100 where no loss) and, for packed samples, the position ids
/// (restarting at 0 for every sample packed into the row).
/// </summary>
public sealed record EncodedSample(int[] InputIds, int[] Labels, int[]? PositionIds = null)
{
    /// <summary>A vision-language sample's images, in the order of its image placeholder tokens; null for text.</summary>
    public IReadOnlyList<Osprey.Images.ProcessedImage>? Images { get; init; }

    /// <summary>The label of a token without loss.</summary>
    public const int IgnoreIndex = EncodedConversation.IgnoreIndex;

    /// <summary>Number of tokens.</summary>
    public int Length => InputIds.Length;

    /// <summary>Number of tokens that carry loss.</summary>
    public int LabelledTokenCount
    {
        get
        {
            var n = 0;
            foreach (var l in Labels) if (l != IgnoreIndex) n++;
            return n;
        }
    }
}
