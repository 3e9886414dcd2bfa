using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// Packing small integer codes into the int32 layouts GPTQ and AWQ checkpoints use: the inverse of
/// <see cref="PackedInts"/> (whose docs describe the layouts).
/// </summary>
internal static class QuantPacking
{
    /// <summary>GPTQ: codes [rows, cols] (0 … 2^bits − 1) packed down each column, 32/bits per int32 word → [rows·bits/32, cols].</summary>
    public static Tensor PackGptqRows(Tensor codes, int bits)
    {
        if (32 % bits != 0) throw new OspreyException($"Osprey writes GPTQ with 2, 4 or 8 bits; {bits}-bit packing spans words, so pick one of those.");
        var per = 32 / bits;
        long rows = codes.shape[0], cols = codes.shape[1];
        if (rows % per != 0) throw new OspreyException($"{rows} rows of {bits}-bit codes do not fill whole int32 words; the layer's width must be a multiple of {per}.");
        using var scope = NewDisposeScope();
        var shifts = arange(0, 32, bits, dtype: ScalarType.Int64, device: codes.device).view(1, per, 1);
        // The values occupy disjoint bits, so their sum is their bitwise or.
        var words = codes.to_type(ScalarType.Int64).reshape(rows / per, per, cols).bitwise_left_shift(shifts).sum(1);
        return ToInt32(words).MoveToOuterDisposeScope();
    }

    // Column 8c + Order[i] goes to nibble i of word c (AutoAWQ's GEMM interleave).
    static readonly long[] AwqOrder = [0, 2, 4, 6, 1, 3, 5, 7];

    /// <summary>AWQ GEMM: 4-bit codes [rows, cols] → int32 [rows, cols/8], eight per word in AutoAWQ's interleaved order.</summary>
    public static Tensor PackAwq(Tensor codes)
    {
        long rows = codes.shape[0], cols = codes.shape[1];
        if (cols % 8 != 0) throw new OspreyException($"AWQ packs eight outputs per int32 word, but the layer has {cols} outputs; AWQ needs a multiple of 8.");
        using var scope = NewDisposeScope();
        var order = tensor(AwqOrder, device: codes.device);
        var shifts = arange(0, 32, 4, dtype: ScalarType.Int64, device: codes.device).view(1, 1, 8);
        var words = codes.to_type(ScalarType.Int64).reshape(rows, cols / 8, 8).index_select(2, order).bitwise_left_shift(shifts).sum(2);
        return ToInt32(words).MoveToOuterDisposeScope();
    }

    /// <summary>Unsigned 32-bit words held in int64 → the int32 with the same bits (two's complement).</summary>
    static Tensor ToInt32(Tensor words) => where(words.ge(1L << 31), words.sub(1L << 32), words).to_type(ScalarType.Int32);
}
