namespace Osprey.Datasets;

/// <summary>
/// One pack: several encoded samples laid end to end in one row of at most the packing length.
/// <see cref="Labels"/> holds -100 at the first token of every sample, so that with the shifted
/// next-token loss the last token of one sample never learns to predict the first token of the next;
/// <see cref="PositionIds"/> restarts at 0 for every sample; <see cref="SampleLengths"/> gives the
/// samples' lengths in order (their running sums are the cu_seqlens boundaries);
/// <see cref="SampleIndices"/> says which input samples they are.
/// </summary>
public sealed record PackedSample(int[] InputIds, int[] Labels, int[] PositionIds, int[] SampleLengths, int[] SampleIndices)
{
    /// <summary>Total tokens in the pack.</summary>
    public int Length => InputIds.Length;

    /// <summary>cu_seqlens: 0, then the running sums of <see cref="SampleLengths"/> (Count + 1 entries).</summary>
    public int[] CumulativeLengths()
    {
        var cu = new int[SampleLengths.Length + 1];
        for (int i = 0; i < SampleLengths.Length; i++) cu[i + 1] = cu[i] + SampleLengths[i];
        return cu;
    }
}
