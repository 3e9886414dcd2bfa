using System.Buffers.Binary;
using Osprey.Gguf;

namespace Osprey.Tests.Gguf;

/// <summary>
/// The GGUF container and ggml's block encodings: write → read round-trips, and blocks built by hand from the
/// published layouts (ggml-common.h), decoded and encoded.
/// </summary>
public sealed class GgufFormatTests
{
    private static float[] RandomValues(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q5_1)]
    public void WriteThenRead_GivesTheSameTensorsBitForBit_AndTheMetadata(GgmlType type)
    {
        using var dir = new TempDirectory();
        var a = GgmlCodec.Encode(type, RandomValues(64 * 3, 1));
        var b = GgmlCodec.Encode(type, RandomValues(32, 2));
        new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("llama.block_count", 7u)
            .Add("llama.rope.freq_base", 10000.5f)
            .Add("tokenizer.ggml.add_bos_token", true)
            .Add("x.i64", GgufValueType.Int64, -5L)
            .Add("x.f64", GgufValueType.Float64, 0.25)
            .AddArray("tokenizer.ggml.tokens", GgufValueType.String, ["a", "ü", ""])
            .AddArray("tokenizer.ggml.token_type", GgufValueType.Int32, [1, 3, 6])
            .AddTensor("blk.0.attn_q.weight", [64, 3], type, a)
            .AddTensor("output_norm.weight", [32], type, b)
            .Write(dir.File("m.gguf"));

        var file = GgufFile.Open(dir.File("m.gguf"));
        Assert.Equal(3u, file.Version);
        Assert.Equal("llama", file.Get("general.architecture"));
        Assert.Equal(7u, file.Get("llama.block_count"));
        Assert.Equal(10000.5f, file.Get("llama.rope.freq_base"));
        Assert.Equal(true, file.Get("tokenizer.ggml.add_bos_token"));
        Assert.Equal(-5L, file.Get("x.i64"));
        Assert.Equal(0.25, file.Get("x.f64"));
        Assert.Equal(new object[] { "a", "ü", "" }, ((GgufArray)file.Get("tokenizer.ggml.tokens")!).Items);
        Assert.Equal(new object[] { 1, 3, 6 }, ((GgufArray)file.Get("tokenizer.ggml.token_type")!).Items);
        var q = file.Tensor("blk.0.attn_q.weight");
        Assert.Equal([64L, 3], q.Dims);
        Assert.Equal([3L, 64], q.TorchShape);
        Assert.Equal(type, q.Type);
        Assert.Equal(a, file.ReadBytes(q));
        Assert.Equal(b, file.ReadBytes(file.Tensor("output_norm.weight")));
        // Every tensor starts on a multiple of the default alignment (32).
        Assert.All(file.Tensors, t => Assert.Equal(0, (file.DataOffset + t.Offset) % 32));
    }

    [Fact]
    public void FloatEncodings_DecodeToTheValuesTheyStand_For()
    {
        var values = RandomValues(64, 3);
        Assert.Equal(values, GgmlCodec.Decode(GgmlType.F32, GgmlCodec.Encode(GgmlType.F32, values), 64));
        // f16 is IEEE half rounded to nearest even; bf16 the top 16 bits rounded to nearest even (1.00390625 is a tie → 1.0).
        Assert.Equal(values.Select(v => (float)(Half)v), GgmlCodec.Decode(GgmlType.F16, GgmlCodec.Encode(GgmlType.F16, values), 64));
        Assert.Equal(0x3F80, GgmlCodec.ToBf16(1.00390625f));
        Assert.Equal(0x3F82, GgmlCodec.ToBf16(1.01171875f)); // 0x3F81_8000: a tie, rounds to the even 0x3F82
        Assert.Equal(0xC000, GgmlCodec.ToBf16(-2f));
    }

    [Fact]
    public void Q8_0_HandBuiltBlock_EncodesAndDecodes()
    {
        // amax 127 gives d = 1 (f16 0x3C00), so each code is the value itself.
        var x = Enumerable.Range(0, 32).Select(j => (float)(j == 0 ? -127 : j * 3 - 40)).ToArray();
        var block = GgmlCodec.Encode(GgmlType.Q8_0, x);
        Assert.Equal(34, block.Length);
        Assert.Equal([0x00, 0x3C], block[..2]);
        for (int j = 0; j < 32; j++) Assert.Equal((sbyte)x[j], (sbyte)block[2 + j]);
        Assert.Equal(x, GgmlCodec.Decode(GgmlType.Q8_0, block, 32));
    }

    [Fact]
    public void Q4_0_HandBuiltBlock_EncodesAndDecodes()
    {
        // Values −8..7; the first of largest magnitude is −8, so d = −8 / −8 = 1 and code = value + 8; value j sits in byte j % 16,
        // the low nibble for j < 16 and the high nibble for j ≥ 16.
        var x = Enumerable.Range(0, 32).Select(j => (float)(j * 7 % 16 - 8)).ToArray();
        var block = GgmlCodec.Encode(GgmlType.Q4_0, x);
        Assert.Equal(18, block.Length);
        Assert.Equal([0x00, 0x3C], block[..2]);
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(((int)x[j] + 8) | (((int)x[j + 16] + 8) << 4)), block[2 + j]);
        Assert.Equal(x, GgmlCodec.Decode(GgmlType.Q4_0, block, 32));
    }

    [Fact]
    public void Q4_1_HandBuiltBlock_EncodesAndDecodes()
    {
        // Values 1.5 + 0.5·k for k = 0..15: min 1.5, max 9, d = 7.5 / 15 = 0.5 (f16 0x3800), m = 1.5 (0x3E00), code = k.
        var x = Enumerable.Range(0, 32).Select(j => 1.5f + 0.5f * (j * 5 % 16)).ToArray();
        var block = GgmlCodec.Encode(GgmlType.Q4_1, x);
        Assert.Equal(20, block.Length);
        Assert.Equal([0x00, 0x38, 0x00, 0x3E], block[..4]);
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(j * 5 % 16 | ((j + 16) * 5 % 16) << 4), block[4 + j]);
        Assert.Equal(x, GgmlCodec.Decode(GgmlType.Q4_1, block, 32));
    }

    [Fact]
    public void Q5_0_HandBuiltBlock_EncodesAndDecodes()
    {
        // Values −16..15 (value 31 is −16, the one of largest magnitude): d = −16 / −16 = 1, code = value + 16. Low
        // nibbles as q4_0; the fifth bit of value j is bit j of the little-endian uint32 after d.
        var x = Enumerable.Range(0, 32).Select(j => (float)((j * 13 + 13) % 32 - 16)).ToArray();
        Assert.Equal(-16f, x[31]);
        var block = GgmlCodec.Encode(GgmlType.Q5_0, x);
        Assert.Equal(22, block.Length);
        Assert.Equal([0x00, 0x3C], block[..2]);
        uint qh = 0;
        for (int j = 0; j < 32; j++) if (((int)x[j] + 16 & 16) != 0) qh |= 1u << j;
        Assert.Equal(qh, BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(2)));
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(((int)x[j] + 16 & 15) | (((int)x[j + 16] + 16 & 15) << 4)), block[6 + j]);
        Assert.Equal(x, GgmlCodec.Decode(GgmlType.Q5_0, block, 32));
    }

    [Fact]
    public void Q5_1_HandBuiltBlock_EncodesAndDecodes()
    {
        // Values −2 + 0.25·k for k = 0..31 in some order: d = 7.75 / 31 = 0.25 (f16 0x3400), m = −2 (0xC000), code = k.
        var x = Enumerable.Range(0, 32).Select(j => -2f + 0.25f * ((j * 7 + 3) % 32)).ToArray();
        var block = GgmlCodec.Encode(GgmlType.Q5_1, x);
        Assert.Equal(24, block.Length);
        Assert.Equal([0x00, 0x34, 0x00, 0xC0], block[..4]);
        uint qh = 0;
        for (int j = 0; j < 32; j++) if (((j * 7 + 3) % 32 & 16) != 0) qh |= 1u << j;
        Assert.Equal(qh, BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(4)));
        Assert.Equal((byte)((3 & 15) | (((16 * 7 + 3) % 32 & 15) << 4)), block[8]);
        Assert.Equal(x, GgmlCodec.Decode(GgmlType.Q5_1, block, 32));
    }

    [Fact]
    public void Q2_K_HandBuiltBlock_DecodesPerThePublishedLayout()
    {
        // scales[16] (low nibble scale, high nibble min), qs[64], d, dmin; value = d·scale·q − dmin·min. In each half of
        // 128 values, sub-block pair j (32 values) takes bits 2j..2j+1 of qs bytes 0..15 (first 16) and 16..31 (next 16).
        var block = new byte[84];
        BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(80), (Half)0.5f);
        BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(82), (Half)0.25f);
        block[0] = 0x23;                 // sub-block 0 (values 0..15): scale 3, min 2
        block[11] = 0x5F;                // sub-block 11 = half 1, j 1, second 16 (values 176..191): scale 15, min 5
        block[0 + 16] = 0b11;            // value 0: q = 3
        block[16 + 32 + 16 + 4] = 0b10 << 2;  // value 128 + 32 + 16 + 4 = 180 (qs byte 32 + 16 + 4): q = 2
        var y = GgmlCodec.Decode(GgmlType.Q2_K, block, 256);
        Assert.Equal(0.5f * 3 * 3 - 0.25f * 2, y[0]);
        Assert.Equal(-0.25f * 2, y[1]);
        Assert.Equal(0.5f * 15 * 2 - 0.25f * 5, y[180]);
        Assert.Equal(0f, y[16]);
    }

    [Fact]
    public void Q3_K_HandBuiltBlock_DecodesPerThePublishedLayout()
    {
        // hmask[32], qs[64], scales[12], d; value = d·(scale − 32)·(q − (high bit set ? 0 : 4)). The 6-bit scale s has
        // its low nibble in byte s % 8 (high nibble for s ≥ 8) and its top two bits in byte 8 + s % 4 at bits 2·(s / 4).
        var block = new byte[110];
        BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(108), (Half)0.5f);
        // Scale 0 = 32 + 3 = 35 = 0b10_0011: low nibble 3 in byte 0, top bits 2 in byte 8 bits 0..1.
        block[32 + 64 + 0] = 0x03;
        block[32 + 64 + 8] = 0b10;
        // Scale 13 = 32 − 2 = 30 = 0b01_1110: low nibble 14 in the high nibble of byte 5, top bits 1 in byte 9 bits 6..7.
        block[32 + 64 + 5] = 0xE0;
        block[32 + 64 + 9] = 0b01 << 6;
        block[0] = 1;                     // value 0: high bit set (hmask[0] bit 0)
        block[32 + 0] = 0b10;             // value 0: low bits 2 → q = 2
        // Value 128 + 64 + 16 + 3 = 211 (half 1, pair 2, second 16 → scale 8 + 4 + 1 = 13): qs byte 32 + 16 + 3 bits 4..5,
        // hmask[19] bit 4 + 2 = 6 clear → −4.
        block[32 + 32 + 16 + 3] = 0b11 << 4;
        var y = GgmlCodec.Decode(GgmlType.Q3_K, block, 256);
        Assert.Equal(0.5f * 3 * 2, y[0]);
        Assert.Equal(0.5f * 3 * -4, y[1]);
        Assert.Equal(0.5f * -2 * (3 - 4), y[211]);
    }

    [Fact]
    public void Q4_K_HandBuiltBlock_DecodesPerThePublishedLayout()
    {
        // d = 1, dmin = 0.5; sub-block 0: scale 2, min 3 (scales[0], scales[4]); sub-block 5: scale 17 = 0b010001 and
        // min 33 = 0b100001, split as low nibbles in scales[9] and top bits in bits 6-7 of scales[1] and scales[5].
        var block = new byte[144];
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)1f);
        BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(2), (Half)0.5f);
        block[4 + 0] = 2;
        block[4 + 4] = 3;
        block[4 + 9] = 0x1 | (0x1 << 4);
        block[4 + 1] = 1 << 6;
        block[4 + 5] = 2 << 6;
        block[16 + 0] = 0xA7;        // value 0 (sub-block 0) = 7, value 32 (sub-block 1, scale 0) = 10
        block[16 + 64 + 3] = 0x90;   // sub-block 5 lives in the high nibbles of bytes 64..95: value 160 + 3 = 9
        var y = GgmlCodec.Decode(GgmlType.Q4_K, block, 256);
        Assert.Equal(1f * 2 * 7 - 0.5f * 3, y[0]);
        Assert.Equal(-0.5f * 3, y[1]);
        Assert.Equal(0f, y[32]);
        Assert.Equal(1f * 17 * 9 - 0.5f * 33, y[163]);
        Assert.Equal(-0.5f * 33, y[164]);
    }

    [Fact]
    public void Q6_K_HandBuiltBlock_DecodesPerThePublishedLayout()
    {
        // ql[128], qh[64], scales[16] (int8), d (f16); value = d · scale · (q − 32), q = low nibble | 2 high bits << 4.
        var block = new byte[210];
        BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(208), (Half)0.5f);
        for (int s = 0; s < 16; s++) block[192 + s] = (byte)(sbyte)(s - 8);
        block[0] = 0x35;            // value 0: low 5; value 64: low 3
        block[128 + 0] = 0b10_00_00_01; // value 0: high 1 → q = 21; value 96: high 2
        block[64 + 32 + 7] = 0x0C;  // second half, value 128 + 32 + 7 = 167: low 12, high 0 → q = 12
        var y = GgmlCodec.Decode(GgmlType.Q6_K, block, 256);
        Assert.Equal(0.5f * -8 * (21 - 32), y[0]);   // scale index 0
        Assert.Equal(0.5f * -4 * (3 - 32), y[64]);   // scale index 4
        Assert.Equal(0f, y[96]);                     // low 0 (ql[32]), high bits 2 → q = 32 → 0
        Assert.Equal(0.5f * (8 + 0 + 2 - 8) * (12 - 32), y[167]); // scale index 8 + 7/16 + 2·1 = 10
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 4)]
    [InlineData(GgmlType.Q5_K, 5)]
    [InlineData(GgmlType.Q6_K, 6)]
    public void KQuants_EncodeWithinHalfAStepPerSubBlock(GgmlType type, int bits)
    {
        var x = RandomValues(512, 4);
        var y = GgmlCodec.Decode(type, GgmlCodec.Encode(type, x), 512);
        // Each value is within a step (range / levels of its sub-block, plus the 6/8-bit scale rounding) of the input.
        var bound = 4.0 / ((1 << bits) - 1) * 1.2;
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - y[i]) <= bound, $"{type} value {i}: {x[i]} → {y[i]}");
    }

    [Fact]
    public void Open_NamesTheFileAndTheProblem_ForBadInput()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("x.gguf"), "GGML1234"u8.ToArray());
        var e = Assert.Throws<OspreyException>(() => GgufFile.Open(dir.File("x.gguf")));
        Assert.Contains("x.gguf is not a GGUF file", e.Message);
        new GgufWriter().Add("general.architecture", "llama").AddTensor("t", [32], GgmlType.F32, new byte[128]).Write(dir.File("ok.gguf"));
        var bytes = File.ReadAllBytes(dir.File("ok.gguf"));
        File.WriteAllBytes(dir.File("cut.gguf"), bytes[..(bytes.Length - 10)]);
        e = Assert.Throws<OspreyException>(() => GgufFile.Open(dir.File("cut.gguf")));
        Assert.Contains("tensor 't' runs past the end of the file", e.Message);
    }
}
