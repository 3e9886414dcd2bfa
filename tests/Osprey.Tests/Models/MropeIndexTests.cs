using Osprey.Models.Qwen2Vl;

namespace Osprey.Tests.Models;

/// <summary>M-RoPE position ids against values computed by hand from transformers' get_rope_index rule.</summary>
public sealed class MropeIndexTests
{
    [Fact]
    public void ImageTokens_TakeGridRowsAndColumns_TextContinuesAfterLargest()
    {
        // t t S I I I I I I E t t with one image of 4x6 patches (2x3 tokens after 2x2 merging); I = 9.
        long[,] ids = { { 5, 6, 7, 9, 9, 9, 9, 9, 9, 8, 5, 6 } };
        var (pos, deltas) = MropeIndex.Compute(ids, null, [(1, 4, 6)], 9, 2);
        long[] t = [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7, 8];
        long[] h = [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7, 8];
        long[] w = [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8];
        for (var j = 0; j < 12; j++)
        {
            Assert.Equal(t[j], pos[0, 0, j]);
            Assert.Equal(h[j], pos[1, 0, j]);
            Assert.Equal(w[j], pos[2, 0, j]);
        }
        Assert.Equal(9 - 12, deltas[0]);
    }

    [Fact]
    public void LeftPadding_GetsOne_AndCountMismatchIsAnError()
    {
        long[,] ids = { { 0, 0, 5, 9, 9 } };
        bool[,] valid = { { false, false, true, true, true } };
        // A 2x4-patch image is 1x2 tokens: text at 0, image at (1,1,1), (1,1,2).
        var (pos, deltas) = MropeIndex.Compute(ids, valid, [(1, 2, 4)], 9, 2);
        Assert.Equal(new long[] { 1, 1, 0, 1, 1 }, Enumerable.Range(0, 5).Select(j => pos[0, 0, j]));
        Assert.Equal(new long[] { 1, 1, 0, 1, 2 }, Enumerable.Range(0, 5).Select(j => pos[2, 0, j]));
        Assert.Equal(3 - 5, deltas[0]);
        var ex = Assert.Throws<OspreyException>(() => MropeIndex.Compute(ids, valid, [(1, 2, 4), (1, 2, 4)], 9, 2));
        Assert.Contains("2 image(s) given", ex.Message);
    }
}
