using Osprey.Inference.Constraints;
using Osprey.Runtime;
using Osprey.Serving;
using static TorchSharp.torch;

namespace Osprey.Tests.Serving;

/// <summary>
/// The engine's constrained step sends each row's allowed tokens to the device as bits and unpacks them there
/// (<see cref="InferenceEngine.AllowedWords"/>, <see cref="InferenceEngine.RefusedFromPacked"/>). Checked id by id
/// against <see cref="TokenMask.Allows"/> and the end-of-sequence rule, for a vocabulary that is not a multiple of 64
/// and ids in the last bit of a word (the sign bit of the bytes' last one).
/// </summary>
public sealed class PackedMaskTests
{
    const int Vocab = 1000; // 15.6 words: the last word is partly past the vocabulary
    static readonly int Words = (Vocab + 63) / 64;

    static TokenMask Mask(IEnumerable<int> allowed, params int[] refused)
    {
        var bits = new ulong[Words];
        var count = 0;
        foreach (var id in allowed.Distinct()) { bits[id >> 6] |= 1UL << (id & 63); count++; }
        return new TokenMask(bits, count, refused);
    }

    static bool[] Refused(params ulong[][] rows)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var bytes = rows.SelectMany(r => r.SelectMany(BitConverter.GetBytes)).ToArray();
        using var packed = tensor(bytes, [rows.Length, Words * 8L]);
        using var values = InferenceEngine.BitValues(CPU);
        using var refused = InferenceEngine.RefusedFromPacked(packed, values, Vocab);
        Assert.Equal([rows.Length, Vocab], refused.shape);
        return refused.contiguous().data<bool>().ToArray();
    }

    [Fact]
    public void Each_id_is_refused_exactly_when_the_mask_does_not_allow_it()
    {
        var rng = new Random(3);
        var allowed = Enumerable.Range(0, 400).Select(_ => rng.Next(Vocab)).Concat([0, 63, 64, 127, 511, 959, 960, 999]).ToArray();
        var mask = Mask(allowed, 63, 511); // two ids the lexical state lets through but the real state refuses
        var row = new ulong[Words];
        int[] stops = [7];
        InferenceEngine.AllowedWords(mask, canEnd: false, stops, Vocab, row);
        var other = new ulong[Words];
        InferenceEngine.AllowedWords(Mask([5]), canEnd: true, stops, Vocab, other);
        var refused = Refused(row, other);
        for (var id = 0; id < Vocab; id++)
        {
            Assert.Equal(!mask.Allows(id), refused[id]);
            Assert.Equal(id is not (5 or 7), refused[Vocab + id]); // may end: end-of-sequence joins the allowed token
        }
        Assert.False(refused[999]);
        Assert.True(refused[63]);
    }

    [Fact]
    public void A_row_that_allows_nothing_may_only_end_or_if_it_cannot_is_left_free()
    {
        var none = new ulong[Words];
        InferenceEngine.AllowedWords(Mask([3], 3), canEnd: false, [7, 9], Vocab, none); // its one token refused by the real state
        var free = new ulong[Words];
        InferenceEngine.AllowedWords(TokenMask.None, canEnd: false, [], Vocab, free);
        var refused = Refused(none, free);
        Assert.Equal([7, 9], Enumerable.Range(0, Vocab).Where(id => !refused[id]));
        Assert.DoesNotContain(true, refused.Skip(Vocab));
    }

    [Fact]
    public void A_reused_row_buffer_keeps_nothing_of_the_row_before()
    {
        var row = new ulong[Words];
        InferenceEngine.AllowedWords(Mask(Enumerable.Range(0, Vocab)), canEnd: false, [], Vocab, row);
        InferenceEngine.AllowedWords(Mask([42]), canEnd: false, [], Vocab, row);
        Assert.Equal([42], Enumerable.Range(0, Vocab).Where(id => !Refused(row)[id]));
    }
}
