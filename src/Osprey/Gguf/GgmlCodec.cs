using System.Buffers.Binary;

namespace Osprey.Gguf;

/// <summary>
/// Encodes float32 rows into ggml's tensor encodings and decodes them back, following the block layouts published in
/// ggml (ggml-common.h: <c>block_q8_0</c>, <c>block_q4_0</c>, <c>block_q4_1</c>, <c>block_q5_0</c>, <c>block_q5_1</c>,
/// <c>block_q2_K</c>, <c>block_q3_K</c>, <c>block_q4_K</c>, <c>block_q5_K</c>, <c>block_q6_K</c>; QK_K = 256). Q8_0, Q4_0,
/// Q4_1, Q5_0 and Q5_1 are quantized exactly as ggml's reference quantizers do; the k-quants use round-to-nearest
/// scales per sub-block (a valid encoding that llama.cpp decodes, without llama.cpp's error-minimizing scale search).
/// Q2_K and Q3_K are read only.
/// </summary>
public static class GgmlCodec
{
    /// <summary>Values per block (1 for the float encodings).</summary>
    public static int BlockValues(GgmlType type) => type switch
    {
        GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 => 1,
        GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 => 32,
        GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K => 256,
        _ => throw Unsupported(type),
    };

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q8_0 => 34,
        GgmlType.Q4_0 => 18,
        GgmlType.Q4_1 => 20,
        GgmlType.Q5_0 => 22,
        GgmlType.Q5_1 => 24,
        GgmlType.Q2_K => 84,
        GgmlType.Q3_K => 110,
        GgmlType.Q4_K => 144,
        GgmlType.Q5_K => 176,
        GgmlType.Q6_K => 210,
        _ => throw Unsupported(type),
    };

    static OspreyException Unsupported(GgmlType type) =>
        new($"ggml type {type} ({(uint)type}) is not one Osprey reads or writes (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K and q3_K (read), q4_K, q5_K, q6_K); convert the file with llama-quantize to one of them.");

    /// <summary>Bytes that <paramref name="count"/> values take (count must be a whole number of blocks).</summary>
    public static long ByteCount(GgmlType type, long count)
    {
        var block = BlockValues(type);
        if (count % block != 0) throw new OspreyException($"{count} values are not a whole number of {type} blocks of {block}.");
        return count / block * BlockBytes(type);
    }

    /// <summary>Encodes <paramref name="values"/> (a whole number of blocks) as <paramref name="type"/>.</summary>
    public static byte[] Encode(GgmlType type, ReadOnlySpan<float> values)
    {
        var output = new byte[ByteCount(type, values.Length)];
        var block = BlockValues(type);
        var size = BlockBytes(type);
        for (int b = 0; b < values.Length / block; b++)
        {
            var x = values.Slice(b * block, block);
            var y = output.AsSpan(b * size, size);
            switch (type)
            {
                case GgmlType.F32: BinaryPrimitives.WriteSingleLittleEndian(y, x[0]); break;
                case GgmlType.F16: BinaryPrimitives.WriteHalfLittleEndian(y, (Half)x[0]); break;
                case GgmlType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(y, ToBf16(x[0])); break;
                case GgmlType.Q8_0: EncodeQ8_0(x, y); break;
                case GgmlType.Q4_0: EncodeQ4_0(x, y); break;
                case GgmlType.Q4_1: EncodeQ4_1(x, y); break;
                case GgmlType.Q5_0: EncodeQ5_0(x, y); break;
                case GgmlType.Q5_1: EncodeQ5_1(x, y); break;
                case GgmlType.Q2_K or GgmlType.Q3_K: throw new OspreyException($"Osprey reads {type} but does not write it; use q4_k_m or a larger type.");
                case GgmlType.Q4_K: EncodeQK(x, y, 4); break;
                case GgmlType.Q5_K: EncodeQK(x, y, 5); break;
                case GgmlType.Q6_K: EncodeQ6_K(x, y); break;
            }
        }
        return output;
    }

    /// <summary>Decodes <paramref name="count"/> values of <paramref name="type"/> from <paramref name="data"/>.</summary>
    public static float[] Decode(GgmlType type, ReadOnlySpan<byte> data, long count)
    {
        var bytes = ByteCount(type, count);
        if (data.Length < bytes) throw new OspreyException($"{count} {type} values need {bytes} bytes; only {data.Length} are there (the file is truncated).");
        var output = new float[count];
        var block = BlockValues(type);
        var size = BlockBytes(type);
        for (long b = 0; b < count / block; b++)
        {
            var x = data.Slice((int)(b * size), size);
            var y = output.AsSpan((int)(b * block), block);
            switch (type)
            {
                case GgmlType.F32: y[0] = BinaryPrimitives.ReadSingleLittleEndian(x); break;
                case GgmlType.F16: y[0] = (float)BinaryPrimitives.ReadHalfLittleEndian(x); break;
                case GgmlType.BF16: y[0] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(x) << 16); break;
                case GgmlType.Q8_0: DecodeQ8_0(x, y); break;
                case GgmlType.Q4_0: DecodeQ4_0(x, y); break;
                case GgmlType.Q4_1: DecodeQ4_1(x, y); break;
                case GgmlType.Q5_0: DecodeQ5(x, y, withMin: false); break;
                case GgmlType.Q5_1: DecodeQ5(x, y, withMin: true); break;
                case GgmlType.Q2_K: DecodeQ2_K(x, y); break;
                case GgmlType.Q3_K: DecodeQ3_K(x, y); break;
                case GgmlType.Q4_K: DecodeQK(x, y, 4); break;
                case GgmlType.Q5_K: DecodeQK(x, y, 5); break;
                case GgmlType.Q6_K: DecodeQ6_K(x, y); break;
            }
        }
        return output;
    }

    /// <summary>float32 → bfloat16 bits, rounding to nearest even as ggml and PyTorch do (NaN stays a quiet NaN).</summary>
    public static ushort ToBf16(float value)
    {
        var u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    static float Half16(ReadOnlySpan<byte> b) => (float)BinaryPrimitives.ReadHalfLittleEndian(b);

    static void EncodeQ8_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        float amax = 0;
        foreach (var v in x) amax = MathF.Max(amax, MathF.Abs(v));
        var d = amax / 127f;
        var id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
        // ggml's roundf: halves away from zero.
        for (int j = 0; j < 32; j++) y[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    static void DecodeQ8_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        var d = Half16(x);
        for (int j = 0; j < 32; j++) y[j] = (sbyte)x[2 + j] * d;
    }

    static void EncodeQ4_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        // The signed value of largest magnitude maps to code 0 (−8), as in ggml's quantize_row_q4_0_ref.
        float amax = 0, max = 0;
        foreach (var v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        var d = max / -8f;
        var id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
        for (int j = 0; j < 16; j++)
        {
            var lo = Math.Min(15, (int)(x[j] * id + 8.5f));
            var hi = Math.Min(15, (int)(x[16 + j] * id + 8.5f));
            y[2 + j] = (byte)(lo | (hi << 4));
        }
    }

    static void DecodeQ4_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        var d = Half16(x);
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((x[2 + j] & 0xF) - 8) * d;
            y[16 + j] = ((x[2 + j] >> 4) - 8) * d;
        }
    }

    // block_q4_1: d (f16), m (f16), qs[16]: value j in byte j % 16, low nibble for j < 16. Codes count up from the
    // block minimum in steps of (max − min)/15, truncating x·id + 0.5 as quantize_row_q4_1_ref does.
    static void EncodeQ4_1(ReadOnlySpan<float> x, Span<byte> y)
    {
        var (min, max) = MinMax(x);
        var d = (max - min) / 15f;
        var id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
        BinaryPrimitives.WriteHalfLittleEndian(y[2..], (Half)min);
        for (int j = 0; j < 16; j++)
        {
            var lo = Math.Min(15, (int)((x[j] - min) * id + 0.5f));
            var hi = Math.Min(15, (int)((x[16 + j] - min) * id + 0.5f));
            y[4 + j] = (byte)(lo | (hi << 4));
        }
    }

    static void DecodeQ4_1(ReadOnlySpan<byte> x, Span<float> y)
    {
        var d = Half16(x);
        var m = Half16(x[2..]);
        for (int j = 0; j < 16; j++)
        {
            y[j] = (x[4 + j] & 0xF) * d + m;
            y[16 + j] = (x[4 + j] >> 4) * d + m;
        }
    }

    static (float Min, float Max) MinMax(ReadOnlySpan<float> x)
    {
        float min = float.MaxValue, max = float.MinValue;
        foreach (var v in x) { min = MathF.Min(min, v); max = MathF.Max(max, v); }
        return (min, max);
    }

    // block_q5_0: d (f16), qh (uint32 little-endian: bit j is the fifth bit of value j), qs[16] (low nibbles as q4_0).
    // As quantize_row_q5_0_ref: the signed value of largest magnitude maps to code 0 (−16).
    static void EncodeQ5_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        float amax = 0, max = 0;
        foreach (var v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        var d = max / -16f;
        var id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
        Span<int> q = stackalloc int[32];
        for (int j = 0; j < 32; j++) q[j] = Math.Min(31, (int)(x[j] * id + 16.5f));
        PackQ5(q, y[2..]);
    }

    // block_q5_1: d (f16), m (f16), qh, qs[16]; codes from the block minimum in steps of (max − min)/31.
    static void EncodeQ5_1(ReadOnlySpan<float> x, Span<byte> y)
    {
        var (min, max) = MinMax(x);
        var d = (max - min) / 31f;
        var id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
        BinaryPrimitives.WriteHalfLittleEndian(y[2..], (Half)min);
        Span<int> q = stackalloc int[32];
        // quantize_row_q5_1_ref casts to uint8 without a clamp; (max − min)·id + 0.5 stays below 32.
        for (int j = 0; j < 32; j++) q[j] = Math.Min(31, (int)((x[j] - min) * id + 0.5f));
        PackQ5(q, y[4..]);
    }

    static void PackQ5(ReadOnlySpan<int> q, Span<byte> y)
    {
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            y[4 + j] = (byte)((q[j] & 0xF) | ((q[16 + j] & 0xF) << 4));
            qh |= (uint)((q[j] >> 4) & 1) << j;
            qh |= (uint)((q[16 + j] >> 4) & 1) << (j + 16);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(y, qh);
    }

    static void DecodeQ5(ReadOnlySpan<byte> x, Span<float> y, bool withMin)
    {
        var d = Half16(x);
        var m = withMin ? Half16(x[2..]) : 0f;
        // q5_0 is (code − 16)·d, computed as ggml does (one rounding).
        var offset = withMin ? 0 : 16;
        var rest = x[(withMin ? 4 : 2)..];
        var qh = BinaryPrimitives.ReadUInt32LittleEndian(rest);
        for (int j = 0; j < 16; j++)
        {
            var lo = (rest[4 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            var hi = (rest[4 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = withMin ? lo * d + m : (lo - offset) * d;
            y[16 + j] = withMin ? hi * d + m : (hi - offset) * d;
        }
    }

    // block_q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d (f16), dmin (f16). Each half of 128 values
    // uses 32 bytes of qs; its sub-blocks of 16 take the 2-bit fields at shifts 0, 2, 4, 6 of bytes 0..15 and 16..31 in turn.
    static void DecodeQ2_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        var scales = x[..16];
        var qs = x.Slice(16, 64);
        var d = Half16(x[80..]);
        var dmin = Half16(x[82..]);
        for (int i = 0; i < 256; i++)
        {
            int h = i / 128, r = i % 128, shift = 2 * (r / 32), half = r % 32 / 16, l = r % 16;
            var sc = scales[8 * h + 2 * (r / 32) + half];
            var q = (qs[32 * h + 16 * half + l] >> shift) & 3;
            y[i] = d * (sc & 0xF) * q - dmin * (sc >> 4);
        }
    }

    // block_q3_K: hmask[32], qs[64], scales[12], d (f16). Low two bits as q2_K's layout; the third bit of value i sits in
    // hmask[i % 32] at bit i / 32, and a clear bit subtracts 4. The 16 6-bit scales (minus 32): low nibbles in bytes 0..7
    // (scale s in byte s % 8, nibble s / 8), top two bits in bytes 8..11 (byte 8 + s % 4, bits 2·(s / 4)).
    static void DecodeQ3_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        var hmask = x[..32];
        var qs = x.Slice(32, 64);
        var packed = x.Slice(96, 12);
        var d = Half16(x[108..]);
        Span<int> scale = stackalloc int[16];
        for (int s = 0; s < 16; s++)
            scale[s] = (((packed[s % 8] >> (4 * (s / 8))) & 0xF) | (((packed[8 + s % 4] >> (2 * (s / 4))) & 3) << 4)) - 32;
        for (int i = 0; i < 256; i++)
        {
            int h = i / 128, r = i % 128, shift = 2 * (r / 32), half = r % 32 / 16, l = r % 16;
            var q = (qs[32 * h + 16 * half + l] >> shift) & 3;
            var high = (hmask[16 * half + l] >> (4 * h + r / 32)) & 1;
            y[i] = d * scale[8 * h + 2 * (r / 32) + half] * (q - (high != 0 ? 0 : 4));
        }
    }

    // block_q4_K: d (f16), dmin (f16), scales[12], qs[128]; block_q5_K adds qh[32] before qs.
    // Sub-block j (32 values) decodes as d·sc_j·q − dmin·m_j with 6-bit sc_j, m_j packed by get_scale_min_k4.
    static void EncodeQK(ReadOnlySpan<float> x, Span<byte> y, int bits)
    {
        var levels = (1 << bits) - 1;
        Span<float> scale = stackalloc float[8];
        Span<float> min = stackalloc float[8];
        for (int j = 0; j < 8; j++)
        {
            var s = x.Slice(32 * j, 32);
            float lo = 0, hi = float.MinValue;
            foreach (var v in s) { lo = MathF.Min(lo, v); hi = MathF.Max(hi, v); }
            min[j] = -lo;
            scale[j] = MathF.Max(0, hi - lo) / levels;
        }
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++) { maxScale = MathF.Max(maxScale, scale[j]); maxMin = MathF.Max(maxMin, min[j]); }
        var d = (float)(Half)(maxScale / 63f);
        var dmin = (float)(Half)(maxMin / 63f);
        Span<int> sc = stackalloc int[8];
        Span<int> mq = stackalloc int[8];
        for (int j = 0; j < 8; j++)
        {
            sc[j] = d > 0 ? Math.Clamp((int)MathF.Round(scale[j] / d), 0, 63) : 0;
            mq[j] = dmin > 0 ? Math.Clamp((int)MathF.Round(min[j] / dmin), 0, 63) : 0;
        }
        BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
        BinaryPrimitives.WriteHalfLittleEndian(y[2..], (Half)dmin);
        var scales = y.Slice(4, 12);
        for (int j = 0; j < 4; j++)
        {
            scales[j] = (byte)(sc[j] | ((sc[j + 4] >> 4) << 6));
            scales[j + 4] = (byte)(mq[j] | ((mq[j + 4] >> 4) << 6));
            scales[j + 8] = (byte)((sc[j + 4] & 0xF) | ((mq[j + 4] & 0xF) << 4));
        }
        var qh = bits == 5 ? y.Slice(16, 32) : default;
        var qs = y.Slice(bits == 5 ? 48 : 16, 128);
        qs.Clear();
        qh.Clear();
        for (int j = 0; j < 8; j++)
        {
            var step = d * sc[j];
            var offset = dmin * mq[j];
            for (int l = 0; l < 32; l++)
            {
                var q = step > 0 ? Math.Clamp((int)MathF.Round((x[32 * j + l] + offset) / step), 0, levels) : 0;
                // Pairs of sub-blocks share 32 bytes: the even one in the low nibbles, the odd one in the high.
                var at = 32 * (j / 2) + l;
                qs[at] |= (byte)((q & 0xF) << (j % 2 == 0 ? 0 : 4));
                if (bits == 5 && q > 15) qh[l] |= (byte)(1 << j);
            }
        }
    }

    static void ScaleMin(ReadOnlySpan<byte> q, int j, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    static void DecodeQK(ReadOnlySpan<byte> x, Span<float> y, int bits)
    {
        var d = Half16(x);
        var dmin = Half16(x[2..]);
        var scales = x.Slice(4, 12);
        var qh = bits == 5 ? x.Slice(16, 32) : default;
        var qs = x.Slice(bits == 5 ? 48 : 16, 128);
        for (int j = 0; j < 8; j++)
        {
            ScaleMin(scales, j, out var sc, out var m);
            for (int l = 0; l < 32; l++)
            {
                var b = qs[32 * (j / 2) + l];
                var q = j % 2 == 0 ? b & 0xF : b >> 4;
                if (bits == 5 && (qh[l] & (1 << j)) != 0) q += 16;
                y[32 * j + l] = d * sc * q - dmin * m;
            }
        }
    }

    // block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d (f16); value = d·scale·(q − 32).
    // Value i of a 128-value half h: l = i % 32, group g = i / 32: ql byte 64h + l + 32·(g % 2), nibble g / 2;
    // qh byte 32h + l, bits 2g; scale 8h + l / 16 + 2g.
    static void EncodeQ6_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<float> scale = stackalloc float[16];
        float maxAbs = 0;
        for (int s = 0; s < 16; s++)
        {
            float amax = 0;
            foreach (var v in x.Slice(16 * s, 16)) amax = MathF.Max(amax, MathF.Abs(v));
            scale[s] = amax / 31f;
            maxAbs = MathF.Max(maxAbs, scale[s]);
        }
        var d = (float)(Half)(maxAbs / 127f);
        Span<int> sc = stackalloc int[16];
        for (int s = 0; s < 16; s++) sc[s] = d > 0 ? Math.Clamp((int)MathF.Round(scale[s] / d), -128, 127) : 0;
        var ql = y[..128];
        var qh = y.Slice(128, 64);
        ql.Clear();
        qh.Clear();
        for (int s = 0; s < 16; s++) y[192 + s] = (byte)(sbyte)sc[s];
        BinaryPrimitives.WriteHalfLittleEndian(y[208..], (Half)d);
        for (int i = 0; i < 256; i++)
        {
            int h = i / 128, r = i % 128, g = r / 32, l = r % 32;
            var step = d * sc[8 * h + l / 16 + 2 * g];
            var q = step != 0 ? Math.Clamp((int)MathF.Round(x[i] / step), -32, 31) + 32 : 32;
            ql[64 * h + l + 32 * (g % 2)] |= (byte)((q & 0xF) << (4 * (g / 2)));
            qh[32 * h + l] |= (byte)((q >> 4) << (2 * g));
        }
    }

    static void DecodeQ6_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        var ql = x[..128];
        var qh = x.Slice(128, 64);
        var scales = x.Slice(192, 16);
        var d = Half16(x[208..]);
        for (int i = 0; i < 256; i++)
        {
            int h = i / 128, r = i % 128, g = r / 32, l = r % 32;
            var low = (ql[64 * h + l + 32 * (g % 2)] >> (4 * (g / 2))) & 0xF;
            var high = (qh[32 * h + l] >> (2 * g)) & 3;
            y[i] = d * (sbyte)scales[8 * h + l / 16 + 2 * g] * ((low | (high << 4)) - 32);
        }
    }
}
