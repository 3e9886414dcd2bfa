using Osprey.Datasets;

namespace Osprey.Tests.Datasets;

/// <summary><see cref="SequencePacker"/>: completeness, limits, positions, boundary labels, determinism, errors.</summary>
public sealed class PackingTests
{
    /// <summary>Random samples: ids are (sample number, token number) encoded so each token is traceable; the first third of each sample is prompt (-100).</summary>
    static List<(int[] InputIds, int[] Labels)> Samples(int count, int maxLen, int seed)
    {
        var rng = new Random(seed);
        var list = new List<(int[], int[])>();
        for (int s = 0; s < count; s++)
        {
            var n = rng.Next(1, maxLen + 1);
            var ids = Enumerable.Range(0, n).Select(j => s * 10_000 + j).ToArray();
            var labels = ids.Select((x, j) => j < n / 3 ? -100 : x).ToArray();
            list.Add((ids, labels));
        }
        return list;
    }

    static void CheckPacks(IReadOnlyList<(int[] InputIds, int[] Labels)> samples, IReadOnlyList<PackedSample> packs, int maxLength)
    {
        var seen = new int[samples.Count];
        foreach (var p in packs)
        {
            Assert.True(p.Length <= maxLength, $"pack of {p.Length} tokens exceeds {maxLength}");
            Assert.Equal(p.Length, p.Labels.Length);
            Assert.Equal(p.Length, p.PositionIds.Length);
            Assert.Equal(p.Length, p.SampleLengths.Sum());
            Assert.Equal(p.SampleIndices.Length, p.SampleLengths.Length);
            var cu = p.CumulativeLengths();
            Assert.Equal(0, cu[0]);
            Assert.Equal(p.Length, cu[^1]);
            for (int m = 0; m < p.SampleIndices.Length; m++)
            {
                var idx = p.SampleIndices[m];
                seen[idx]++;
                var (ids, labels) = samples[idx];
                Assert.Equal(ids.Length, p.SampleLengths[m]);
                int start = cu[m];
                Assert.Equal(ids, p.InputIds[start..cu[m + 1]]);
                Assert.Equal(-100, p.Labels[start]);
                Assert.Equal(labels[1..], p.Labels[(start + 1)..cu[m + 1]]);
                Assert.Equal(Enumerable.Range(0, ids.Length), p.PositionIds[start..cu[m + 1]]);
            }
        }
        Assert.All(seen, c => Assert.Equal(1, c));
    }

    [Fact]
    public void EverySampleOnceWithinLimitRestartingPositionsAndMaskedStarts()
    {
        var samples = Samples(500, 64, 1);
        var packs = SequencePacker.Pack(samples, 64);
        CheckPacks(samples, packs, 64);
        // First-fit-decreasing is near optimal on these: within a few packs of the lower bound.
        var lower = (int)Math.Ceiling(samples.Sum(s => s.InputIds.Length) / 64.0);
        Assert.True(packs.Count <= lower + lower / 10 + 1, $"{packs.Count} packs for a lower bound of {lower}");
    }

    [Fact]
    public void FirstFitDecreasingOnAKnownCase()
    {
        // Sizes 6,5,4,3,2,1 into 7: FFD gives {6,1}, {5,2}, {4,3}.
        var sizes = new[] { 3, 6, 1, 5, 2, 4 };
        var samples = sizes.Select(n => (Enumerable.Repeat(7, n).ToArray(), Enumerable.Repeat(7, n).ToArray())).ToList();
        var packs = SequencePacker.Pack(samples, 7);
        Assert.Equal(3, packs.Count);
        Assert.Equal([1, 2], packs[0].SampleIndices);       // 6 then 1, in input order
        Assert.Equal([3, 4], packs[1].SampleIndices);       // 5 and 2
        Assert.Equal([0, 5], packs[2].SampleIndices);       // 3 and 4
        Assert.Equal([6, 1], packs[0].SampleLengths);
        Assert.Equal([0, 1, 2, 3, 4, 5, 0], packs[0].PositionIds);
        Assert.Equal([-100, 7, 7, 7, 7, 7, -100], packs[0].Labels);
    }

    [Fact]
    public void Deterministic()
    {
        var samples = Samples(300, 40, 2);
        var a = SequencePacker.Pack(samples, 50);
        var b = SequencePacker.Pack(Samples(300, 40, 2), 50);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].InputIds, b[i].InputIds);
            Assert.Equal(a[i].Labels, b[i].Labels);
            Assert.Equal(a[i].PositionIds, b[i].PositionIds);
            Assert.Equal(a[i].SampleIndices, b[i].SampleIndices);
        }
        var s1 = SequencePacker.PackStreaming(samples, 50, 37).Select(p => string.Join(",", p.SampleIndices)).ToList();
        var s2 = SequencePacker.PackStreaming(Samples(300, 40, 2), 50, 37).Select(p => string.Join(",", p.SampleIndices)).ToList();
        Assert.Equal(s1, s2);
    }

    [Fact]
    public void TooLongSampleIsRejectedClearly()
    {
        var samples = new List<(int[], int[])> { ([1, 2], [1, 2]), ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) };
        var e = Assert.Throws<ArgumentException>(() => SequencePacker.Pack(samples, 4));
        Assert.Contains("sample 1 has 5 tokens", e.Message);
        Assert.Contains("packing length 4", e.Message);
        var s = Assert.Throws<ArgumentException>(() => SequencePacker.PackStreaming(samples, 4).ToList());
        Assert.Contains("sample 1 has 5 tokens", s.Message);
        Assert.Throws<ArgumentException>(() => SequencePacker.Pack([([1, 2], [1])], 4));
        Assert.Throws<ArgumentException>(() => SequencePacker.Pack([([], [])], 4));
        Assert.Empty(SequencePacker.Pack([], 4));
        Assert.Empty(SequencePacker.PackStreaming([], 4));
    }

    [Fact]
    public void StreamingIsCompleteBoundedAndLazy()
    {
        var samples = Samples(1000, 30, 3);
        var packs = SequencePacker.PackStreaming(samples, 48, bufferSize: 64).ToList();
        CheckPacks(samples, packs, 48);
        var lower = (int)Math.Ceiling(samples.Sum(s => s.InputIds.Length) / 48.0);
        Assert.True(packs.Count <= lower + lower / 8 + 2, $"{packs.Count} packs for a lower bound of {lower}");

        // Lazy: the first pack comes after reading one buffer, not the whole (infinite) stream.
        int read = 0;
        IEnumerable<(int[], int[])> Endless() { for (int i = 0; ; i++) { read++; yield return ([i, i], [i, i]); } }
        var first = SequencePacker.PackStreaming(Endless(), 8, bufferSize: 10).Take(2).ToList();
        Assert.Equal(2, first.Count);
        Assert.True(read <= 20, $"read {read} samples for two packs with a buffer of 10");
    }

    [Fact]
    public void CollatePadsAsOwnSegment()
    {
        var packs = SequencePacker.Pack([([5, 6, 7], [5, 6, 7]), ([8], [8]), ([9, 9], [9, 9])], 4);
        var batch = SequencePacker.Collate(packs, padTokenId: 0);
        Assert.Equal(packs.Count, batch.Rows);
        Assert.Equal(4, batch.Columns);
        // Pack 0 = {3, 1} (full), pack 1 = {2} padded with two tokens at positions 0, 1.
        Assert.Equal([5L, 6, 7, 8, 9, 9, 0, 0], batch.InputIds);
        Assert.Equal([-100L, 6, 7, -100, -100, 9, -100, -100], batch.Labels);
        Assert.Equal([0L, 1, 2, 0, 0, 1, 0, 1], batch.PositionIds);
    }
}
