using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Osprey.Runtime.Cpu;

/// <summary>
/// A weight matrix [rows, cols] that the managed CPU decoder (<see cref="Models.CpuDecoder"/>) multiplies one input row by:
/// y[r] = W[r]·x for a range of rows, x and y float32. Each kind reads its weights where they already are (a libtorch
/// tensor's storage, kept alive by the model) or in a layout of its own made once at load, and streams them through
/// 256-bit vectors, prefetching the next rows: a batch-1 decode step is a memory read of every weight once, so the
/// kernels aim at the memory bandwidth rather than at arithmetic.
/// </summary>
/// <remarks>
/// Columns come in multiples of 32 (<see cref="ColumnMultiple"/>); the decoder checks that before it builds anything.
/// </remarks>
internal abstract unsafe class CpuMatrix : IDisposable
{
    /// <summary>Rows (output features).</summary>
    public int Rows { get; }

    /// <summary>Columns (input features).</summary>
    public int Cols { get; }

    /// <summary>The multiple every matrix's column count must be.</summary>
    public const int ColumnMultiple = 32;

    protected CpuMatrix(int rows, int cols)
    {
        if (cols % ColumnMultiple != 0) throw new ArgumentException($"a CPU matrix needs a multiple of {ColumnMultiple} columns, got {cols}");
        (Rows, Cols) = (rows, cols);
    }

    /// <summary>y[r] = W[r]·x for r in [<paramref name="from"/>, <paramref name="to"/>).</summary>
    public abstract void Multiply(float* x, float* y, int from, int to);

    /// <summary>Whether this machine runs the kernels (256-bit vectors with FMA).</summary>
    public static bool Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <inheritdoc />
    public virtual void Dispose() { }

    /// <summary>
    /// How many blocks of four rows ahead of the current block the quantized kernels prefetch: at least 4 KB ahead. One
    /// block ahead is 1.8 KB for a row of 896 4-bit columns, and the loads then waited on memory: on one core of the
    /// 2-core EPYC, 16 against 33 G weights/s for the transposed shape, and 47.0 → 52.8 tok/s for the 0.5B shape's 4-bit
    /// decode (benchmarks/cpu-decode-2core.md).
    /// </summary>
    protected static int PrefetchBlocks(long rowBytes) => (int)Math.Max(1, PrefetchDistance / (4 * rowBytes));

    const int PrefetchDistance = 4096;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static void Prefetch(void* p)
    {
        if (Sse.IsSupported) Sse.Prefetch0(p);
    }

    /// <summary>8 bfloat16 values (their bit patterns) as float32: the bits shifted into the high half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static Vector256<float> Bf16(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    /// <summary>
    /// x [<paramref name="k"/>] as 16-bit integers per group of <paramref name="group"/> (a multiple of 16): q = round(x / a)
    /// with a = the group's largest |x| / 32767 (a = 0 for an all-zero group), into <paramref name="q"/> (32-byte aligned);
    /// <paramref name="steps"/>[g] = a and, when given, <paramref name="sums"/>[g] = Σ x over the group in float32.
    /// </summary>
    protected static void QuantizeGroups(float* x, int k, int group, short* q, float* sums, float* steps)
    {
        var signless = Vector256.Create(0x7FFFFFFF).AsSingle();
        for (int start = 0, g = 0; start < k; start += group, g++)
        {
            var max = Vector256<float>.Zero;
            var sum = Vector256<float>.Zero;
            for (int i = start; i < start + group; i += 8)
            {
                var v = Avx.LoadVector256(x + i);
                max = Avx.Max(max, Avx.And(v, signless));
                sum = Avx.Add(sum, v);
            }
            var m = Max(max);
            if (sums is not null) sums[g] = Vector256.Sum(sum);
            steps[g] = m / 32767f;
            var inv = Vector256.Create(m > 0 ? 32767f / m : 0f);
            for (int i = start; i < start + group; i += 16)
            {
                // cvtps2dq rounds to nearest even, as MathF.Round; the pack interleaves 128-bit halves, the permute restores order.
                var a = Avx.ConvertToVector256Int32(Avx.Multiply(Avx.LoadVector256(x + i), inv));
                var b = Avx.ConvertToVector256Int32(Avx.Multiply(Avx.LoadVector256(x + i + 8), inv));
                Avx.Store(q + i, Avx2.Permute4x64(Avx2.PackSignedSaturate(a, b).AsInt64(), 0b11_01_10_00).AsInt16());
            }
        }
    }

    static float Max(Vector256<float> v)
    {
        var m = Sse.Max(v.GetLower(), v.GetUpper());
        m = Sse.Max(m, Sse.Shuffle(m, m, 0b01_00_11_10));
        m = Sse.Max(m, Sse.Shuffle(m, m, 0b10_11_00_01));
        return m.ToScalar();
    }
}

/// <summary>float32 weights [rows, cols], row-major, read in place.</summary>
internal sealed unsafe class F32Matrix(float* weights, int rows, int cols, object owner) : CpuMatrix(rows, cols)
{
    readonly object _owner = owner; // keeps the storage alive

    /// <inheritdoc />
    public override void Multiply(float* x, float* y, int from, int to)
    {
        GC.KeepAlive(_owner);
        int k = Cols, r = from;
        for (; r + 4 <= to; r += 4)
        {
            float* w0 = weights + (long)r * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            byte* next = (byte*)(w0 + 4L * k);
            var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
            for (int i = 0; i < k; i += 8)
            {
                Prefetch(next + i * 16L);
                Prefetch(next + i * 16L + 64);
                var xv = Avx.LoadVector256(x + i);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + i), xv, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + i), xv, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + i), xv, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + i), xv, a3);
            }
            y[r] = Vector256.Sum(a0); y[r + 1] = Vector256.Sum(a1); y[r + 2] = Vector256.Sum(a2); y[r + 3] = Vector256.Sum(a3);
        }
        for (; r < to; r++)
        {
            float* w0 = weights + (long)r * k;
            var a0 = Vector256<float>.Zero;
            for (int i = 0; i < k; i += 8) a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + i), Avx.LoadVector256(x + i), a0);
            y[r] = Vector256.Sum(a0);
        }
    }
}

/// <summary>bfloat16 weights [rows, cols], row-major, read in place and widened to float32 in registers.</summary>
internal sealed unsafe class Bf16Matrix(ushort* weights, int rows, int cols, object owner) : CpuMatrix(rows, cols)
{
    readonly object _owner = owner;

    /// <inheritdoc />
    public override void Multiply(float* x, float* y, int from, int to)
    {
        GC.KeepAlive(_owner);
        int k = Cols, r = from;
        for (; r + 4 <= to; r += 4)
        {
            ushort* w0 = weights + (long)r * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            byte* next = (byte*)(w0 + 4L * k);
            var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
            for (int i = 0; i < k; i += 16)
            {
                // The next four rows, 128 bytes of them per 16 columns of these.
                Prefetch(next + i * 8L);
                Prefetch(next + i * 8L + 64);
                var x0 = Avx.LoadVector256(x + i);
                var x1 = Avx.LoadVector256(x + i + 8);
                a0 = Fma.MultiplyAdd(Bf16(w0 + i), x0, a0); a0 = Fma.MultiplyAdd(Bf16(w0 + i + 8), x1, a0);
                a1 = Fma.MultiplyAdd(Bf16(w1 + i), x0, a1); a1 = Fma.MultiplyAdd(Bf16(w1 + i + 8), x1, a1);
                a2 = Fma.MultiplyAdd(Bf16(w2 + i), x0, a2); a2 = Fma.MultiplyAdd(Bf16(w2 + i + 8), x1, a2);
                a3 = Fma.MultiplyAdd(Bf16(w3 + i), x0, a3); a3 = Fma.MultiplyAdd(Bf16(w3 + i + 8), x1, a3);
            }
            y[r] = Vector256.Sum(a0); y[r + 1] = Vector256.Sum(a1); y[r + 2] = Vector256.Sum(a2); y[r + 3] = Vector256.Sum(a3);
        }
        for (; r < to; r++)
        {
            ushort* w0 = weights + (long)r * k;
            var a0 = Vector256<float>.Zero;
            for (int i = 0; i < k; i += 8) a0 = Fma.MultiplyAdd(Bf16(w0 + i), Avx.LoadVector256(x + i), a0);
            y[r] = Vector256.Sum(a0);
        }
    }
}

/// <summary>
/// int8 codes [rows, cols] with one float32 scale per row (LLM.int8's row-wise weights, and the int8 copy of an output
/// head): y[r] = scale[r]·Σₖ code[r, k]·x[k]. The codes are read in place.
/// </summary>
internal sealed unsafe class Int8RowMatrix : CpuMatrix
{
    readonly sbyte* _codes;
    readonly float* _scales;
    readonly object _owner;

    /// <summary>Codes read in place (kept alive by <paramref name="owner"/>); the scales are copied.</summary>
    public Int8RowMatrix(sbyte* codes, ReadOnlySpan<float> scales, int cols, object owner) : base(scales.Length, cols)
    {
        _codes = codes;
        _owner = owner;
        _scales = (float*)NativeMemory.AlignedAlloc((nuint)(scales.Length * 4), 64);
        scales.CopyTo(new Span<float>(_scales, scales.Length));
    }

    /// <summary>
    /// Integer products, as the 4-bit kernel: x rounded to 16-bit integers per group of columns (each value moves by at
    /// most 2⁻¹⁶ of its group's largest |x|), 16 codes widened to 16-bit lanes and paired with x by <c>vpmaddwd</c> into
    /// 32-bit sums (three instructions per 16 weights), each group's sum made float once and scaled by its step, then
    /// the row by its scale.
    /// </summary>
    public override void Multiply(float* x, float* y, int from, int to)
    {
        GC.KeepAlive(_owner);
        int k = Cols;
        var group = k % 128 == 0 ? 128 : k % 64 == 0 ? 64 : 32; // |Σ| ≤ 127 · 32767 · 128 < 2³¹
        int groups = k / group;
        var steps = stackalloc float[groups];
        var buffer = stackalloc short[k + 16];
        var q = (short*)(((nint)buffer + 31) & ~(nint)31);
        QuantizeGroups(x, k, group, q, null, steps);
        var ahead = PrefetchBlocks(k);
        int r = from;
        for (; r + 4 <= to; r += 4)
        {
            sbyte* w0 = _codes + (long)r * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            byte* next = (byte*)(w0 + 4L * k * ahead);
            var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
            for (int g = 0; g < groups; g++)
            {
                var p0 = Vector256<int>.Zero; var p1 = p0; var p2 = p0; var p3 = p0;
                for (int i = g * group, end = i + group; i < end; i += 16)
                {
                    Prefetch(next + i * 4L);
                    var xv = Avx.LoadVector256(q + i);
                    p0 = Avx2.Add(p0, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(w0 + i), xv));
                    p1 = Avx2.Add(p1, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(w1 + i), xv));
                    p2 = Avx2.Add(p2, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(w2 + i), xv));
                    p3 = Avx2.Add(p3, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(w3 + i), xv));
                }
                var step = Vector256.Create(steps[g]);
                a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), step, a0);
                a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), step, a1);
                a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p2), step, a2);
                a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p3), step, a3);
            }
            y[r] = Vector256.Sum(a0) * _scales[r]; y[r + 1] = Vector256.Sum(a1) * _scales[r + 1];
            y[r + 2] = Vector256.Sum(a2) * _scales[r + 2]; y[r + 3] = Vector256.Sum(a3) * _scales[r + 3];
        }
        for (; r < to; r++)
        {
            sbyte* w0 = _codes + (long)r * k;
            var a0 = Vector256<float>.Zero;
            for (int g = 0; g < groups; g++)
            {
                var p0 = Vector256<int>.Zero;
                for (int i = g * group, end = i + group; i < end; i += 16)
                    p0 = Avx2.Add(p0, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(w0 + i), Avx.LoadVector256(q + i)));
                a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), Vector256.Create(steps[g]), a0);
            }
            y[r] = Vector256.Sum(a0) * _scales[r];
        }
    }

    /// <inheritdoc />
    public override void Dispose() => NativeMemory.AlignedFree(_scales);
}

/// <summary>
/// 4-bit codes in groups of columns, each (row, group) with a scale and an offset: w = code·scale + offset (GPTQ's
/// scale·(code − zero) with offset = −scale·zero). Its own layout, made once from the codes: per row, per block of 32
/// columns, 16 bytes where byte j holds column j in its low nibble and column j + 16 in its high one.
/// </summary>
/// <remarks>
/// The products are integer: a call rounds x to 16-bit integers per group (x ≈ q·a with a = the group's largest |x| /
/// 32767, so each value moves by at most 2⁻¹⁶ of that largest one, less than bfloat16's own rounding of it); then per
/// 32 weights one widening of 16 bytes to 16-bit lanes gives the block's first 16 codes (masked) and its last 16
/// (shifted), and <c>vpmaddwd</c> multiplies and pairs them with x into 32-bit sums: seven 256-bit instructions, none
/// crossing lanes but the widening. Per group the integer sum becomes float
/// once: y = Σ_g scale_g·a_g·(Σ code·q) + Σ_g offset_g·(Σ_{k∈g} x_k), the last sums taken in float32 from x itself.
/// </remarks>
internal sealed unsafe class Int4GroupMatrix : CpuMatrix
{
    readonly byte* _packed;   // [rows, cols / 2]
    readonly float* _scales;  // [rows, groups]
    readonly float* _offsets; // [rows, groups]
    readonly float* _blocked; // per block of 4 rows, per group: the 4 rows' scales then their 4 offsets
    readonly int _groupSize, _groups;

    /// <summary>
    /// From codes [rows, cols] (0..15), scales and offsets [rows, groups], groups of <paramref name="groupSize"/> columns
    /// (a multiple of 32). The kernel works in units of at most 128 columns (x is rounded per unit, and 32-bit sums of
    /// 128 products cannot overflow): a larger group's scale and offset are repeated for each of its units.
    /// </summary>
    public Int4GroupMatrix(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<float> offsets, int rows, int cols, int groupSize) : base(rows, cols)
    {
        if (groupSize % ColumnMultiple != 0 || cols % groupSize != 0)
            throw new ArgumentException($"4-bit groups of {groupSize} columns do not tile {cols} columns in blocks of {ColumnMultiple}");
        int stored = cols / groupSize;
        if (codes.Length != (long)rows * cols || scales.Length != rows * stored || offsets.Length != rows * stored)
            throw new ArgumentException("codes, scales and offsets do not match the matrix shape");
        _groupSize = groupSize <= 128 ? groupSize : groupSize % 128 == 0 ? 128 : groupSize % 64 == 0 ? 64 : 32;
        _groups = cols / _groupSize;
        var repeat = groupSize / _groupSize;
        _packed = (byte*)NativeMemory.AlignedAlloc((nuint)((long)rows * cols / 2), 64);
        _scales = (float*)NativeMemory.AlignedAlloc((nuint)((long)rows * _groups * 4), 64);
        _offsets = (float*)NativeMemory.AlignedAlloc((nuint)((long)rows * _groups * 4), 64);
        for (long i = 0; i < (long)rows * _groups; i++)
        {
            _scales[i] = scales[(int)(i / repeat)];
            _offsets[i] = offsets[(int)(i / repeat)];
        }
        for (long b = 0; b < (long)rows * cols; b += 32)
            for (int j = 0; j < 16; j++)
                _packed[b / 2 + j] = (byte)((codes[(int)(b + j)] & 15) | ((codes[(int)(b + j + 16)] & 15) << 4));
        _blocked = (float*)NativeMemory.AlignedAlloc((nuint)((long)(rows / 4) * _groups * 8 * 4 + 64), 64);
        for (long blk = 0; blk < rows / 4; blk++)
            for (int g = 0; g < _groups; g++)
                for (int i = 0; i < 4; i++)
                {
                    _blocked[(blk * _groups + g) * 8 + i] = _scales[(blk * 4 + i) * _groups + g];
                    _blocked[(blk * _groups + g) * 8 + 4 + i] = _offsets[(blk * 4 + i) * _groups + g];
                }
    }

    /// <inheritdoc />
    public override void Multiply(float* x, float* y, int from, int to)
    {
        int k = Cols, half = k / 2;
        var sums = stackalloc float[_groups];
        var steps = stackalloc float[_groups];
        var buffer = stackalloc short[k + 16];
        var q = (short*)(((nint)buffer + 31) & ~(nint)31);
        QuantizeGroups(x, k, _groupSize, q, sums, steps);
        int pairs = _groupSize / 2; // bytes (and even/odd columns) per group
        int r = from;
        if (UseVnni && AvxVnni.IsSupported)
        {
            for (; r + 4 <= to; r += 4) Rows4<VnniProducts>(r, q, sums, steps, pairs, y);
            for (; r < to; r++) y[r] = Row<VnniProducts>(r, q, steps, pairs) + Offsets(r, sums);
        }
        else
        {
            for (; r + 4 <= to; r += 4) Rows4<Avx2Products>(r, q, sums, steps, pairs, y);
            for (; r < to; r++) y[r] = Row<Avx2Products>(r, q, steps, pairs) + Offsets(r, sums);
        }
    }

    /// <summary>Σ_g offset_g·(Σ_{k∈g} x_k) of row <paramref name="r"/>.</summary>
    float Offsets(int r, float* sums)
    {
        float* o = _offsets + (long)r * _groups;
        float a = 0, b = 0;
        int g = 0;
        for (; g + 2 <= _groups; g += 2)
        {
            a += o[g] * sums[g];
            b += o[g + 1] * sums[g + 1];
        }
        if (g < _groups) a += o[g] * sums[g];
        return a + b;
    }

    /// <summary>
    /// Whether the 4-bit kernel multiplies and accumulates with AVX-VNNI's <c>vpdpwssd</c> (one instruction where
    /// <c>vpmaddwd</c> + <c>vpaddd</c> take two; the same integer sums) where the CPU has it. Tests turn it off to check
    /// the AVX2 path on the same machine.
    /// </summary>
    internal static bool UseVnni { get; set; } = AvxVnni.IsSupported;

    /// <summary>One 32-column block's products into 32-bit sums, two ways (a struct parameter, so the JIT compiles each loop for one).</summary>
    interface IBlockProducts
    {
        static abstract Vector256<int> Block(byte* w, short* x, Vector256<short> low, Vector256<int> acc);
    }

    /// <summary>
    /// 16 bytes (32 codes) times x's 32 values: one widening of the bytes to 16-bit lanes gives the block's first 16
    /// codes (masked) and its last 16 (shifted); <c>vpmaddwd</c> multiplies and pairs them with x, added to the sums.
    /// </summary>
    readonly struct Avx2Products : IBlockProducts
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Block(byte* w, short* x, Vector256<short> low, Vector256<int> acc)
        {
            var words = Avx2.ConvertToVector256Int16(w);
            acc = Avx2.Add(acc, Avx2.MultiplyAddAdjacent(Avx2.And(words, low), Avx.LoadVector256(x)));
            return Avx2.Add(acc, Avx2.MultiplyAddAdjacent(Avx2.ShiftRightLogical(words, 4), Avx.LoadVector256(x + 16)));
        }
    }

    /// <summary>As <see cref="Avx2Products"/> with <c>vpdpwssd</c> doing the multiply, pairing and add at once (measured on
    /// one core of the 2-core EPYC: 32 → 35.8 G weights/s at 4864 × 896, 28.6 → 35.8 at 896 × 4864, group 32).</summary>
    readonly struct VnniProducts : IBlockProducts
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Block(byte* w, short* x, Vector256<short> low, Vector256<int> acc)
        {
            var words = Avx2.ConvertToVector256Int16(w);
            acc = AvxVnni.MultiplyWideningAndAdd(acc, Avx2.And(words, low), Avx.LoadVector256(x));
            return AvxVnni.MultiplyWideningAndAdd(acc, Avx2.ShiftRightLogical(words, 4), Avx.LoadVector256(x + 16));
        }
    }

    /// <summary>
    /// Rows r..r+3 together: per group, the four rows' 32-bit sums are folded into one vector (three horizontal adds:
    /// lanes r, r+1, r+2, r+3 twice), converted once and scaled by the four rows' scales at once; the offsets' terms
    /// go the same way. Eight instructions per group for the four rows where a row at a time takes sixteen.
    /// </summary>
    void Rows4<TProducts>(int r, short* q, float* sums, float* steps, int pairs, float* y) where TProducts : struct, IBlockProducts
    {
        int half = Cols / 2;
        var low = Vector256.Create((short)15);
        byte* w0 = _packed + (long)r * half, w1 = w0 + half, w2 = w1 + half, w3 = w2 + half;
        byte* next = w0 + 4L * half * PrefetchBlocks(half);
        float* blocked = _blocked + (long)(r / 4) * _groups * 8;
        var acc = Vector256<float>.Zero;
        var offsets = Vector128<float>.Zero;
        for (int g = 0; g < _groups; g++)
        {
            var p0 = Vector256<int>.Zero; var p1 = p0; var p2 = p0; var p3 = p0;
            int start = g * pairs, end = start + pairs;
            for (int j = start; j < end; j += 16)
            {
                Prefetch(next + 4L * j);
                var xq = q + 2 * j;
                p0 = TProducts.Block(w0 + j, xq, low, p0);
                p1 = TProducts.Block(w1 + j, xq, low, p1);
                p2 = TProducts.Block(w2 + j, xq, low, p2);
                p3 = TProducts.Block(w3 + j, xq, low, p3);
            }
            var folded = Avx2.HorizontalAdd(Avx2.HorizontalAdd(p0, p1), Avx2.HorizontalAdd(p2, p3)); // [r0 r1 r2 r3 | r0 r1 r2 r3]
            var scales = Sse.Multiply(Sse.LoadAlignedVector128(blocked + g * 8), Vector128.Create(steps[g]));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(folded), Vector256.Create(scales, scales), acc);
            offsets = Fma.MultiplyAdd(Sse.LoadAlignedVector128(blocked + g * 8 + 4), Vector128.Create(sums[g]), offsets);
        }
        Sse.Store(y + r, Sse.Add(Sse.Add(acc.GetLower(), acc.GetUpper()), offsets));
    }

    float Row<TProducts>(int r, short* q, float* steps, int pairs) where TProducts : struct, IBlockProducts
    {
        var low = Vector256.Create((short)15);
        byte* w = _packed + (long)r * (Cols / 2);
        float* s = _scales + (long)r * _groups;
        var acc = Vector256<float>.Zero;
        for (int g = 0; g < _groups; g++)
        {
            var part = Vector256<int>.Zero;
            int start = g * pairs, end = start + pairs;
            for (int j = start; j < end; j += 16)
                part = TProducts.Block(w + j, q + 2 * j, low, part);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(part), Vector256.Create(s[g] * steps[g]), acc);
        }
        return Vector256.Sum(acc);
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        NativeMemory.AlignedFree(_packed);
        NativeMemory.AlignedFree(_scales);
        NativeMemory.AlignedFree(_offsets);
        NativeMemory.AlignedFree(_blocked);
    }
}
