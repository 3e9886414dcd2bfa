using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// Unpacking the int32 layouts of GPTQ and AWQ checkpoints (the layouts AutoGPTQ/GPTQModel and AutoAWQ write and vLLM
/// reads) into one small integer per element.
/// </summary>
internal static class PackedInts
{
    /// <summary>
    /// GPTQ: <paramref name="packed"/> [rows, cols] int32 holds, down each column, a little-endian bit stream of
    /// <paramref name="bits"/>-bit values (32 values in every <paramref name="bits"/> words, value j at stream bits
    /// bits·j …), so a 3-bit value may span two words. Returns the values, int32 [rows · 32 / bits, cols].
    /// </summary>
    public static Tensor UnpackGptqRows(Tensor packed, int bits)
    {
        long rows = packed.shape[0], cols = packed.shape[1];
        var mask = (1 << bits) - 1;
        using var scope = NewDisposeScope();
        Tensor values;
        if (32 % bits == 0)
        {
            // Word w holds values per·w … per·w + per - 1 whole: one shift per position.
            var per = 32 / bits;
            var shifts = arange(0, 32, bits, dtype: ScalarType.Int32, device: packed.device).view(1, per, 1);
            values = packed.unsqueeze(1).bitwise_right_shift(shifts).bitwise_and(mask).reshape(rows * per, cols);
        }
        else
        {
            if (rows % bits != 0) throw new ArgumentException($"{rows} rows of {bits}-bit values are not whole blocks of {bits} words");
            var blocks = packed.reshape(rows / bits, bits, cols);
            var parts = new Tensor[32];
            for (var j = 0; j < 32; j++)
            {
                int offset = j * bits, word = offset / 32, shift = offset % 32;
                // The arithmetic shift of int32 drags the sign bit in from the top; the masks cut it off.
                var v = blocks.select(1, word).bitwise_right_shift(shift);
                if (shift + bits > 32)
                    v = v.bitwise_and((1 << (32 - shift)) - 1).bitwise_or(blocks.select(1, word + 1).bitwise_left_shift(32 - shift));
                parts[j] = v.bitwise_and(mask);
            }
            values = stack(parts, 1).reshape(rows / bits * 32, cols);
        }
        return values.MoveToOuterDisposeScope();
    }

    // Nibble i of an AWQ GEMM word holds column 8c + [0, 2, 4, 6, 1, 3, 5, 7][i]; column j is therefore in nibble Reverse[j].
    static readonly long[] AwqReverse = [0, 4, 1, 5, 2, 6, 3, 7];

    /// <summary>AWQ GEMM: [rows, cols / 8] int32 with eight 4-bit values per word in AWQ's interleaved order → int32 [rows, cols].</summary>
    public static Tensor UnpackAwq(Tensor packed)
    {
        long rows = packed.shape[0], words = packed.shape[1];
        using var scope = NewDisposeScope();
        var shifts = arange(0, 32, 4, dtype: ScalarType.Int32, device: packed.device).view(1, 1, 8);
        var nibbles = packed.unsqueeze(2).bitwise_right_shift(shifts).bitwise_and(15);
        var order = tensor(AwqReverse, device: packed.device);
        return nibbles.index_select(2, order).reshape(rows, words * 8).MoveToOuterDisposeScope();
    }
}
