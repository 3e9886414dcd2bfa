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

    /// <summary>Bytes of weights read per product (what the bandwidth figures count).</summary>
    public abstract long Bytes { get; }

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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static void Prefetch(void* p)
    {
        if (Sse.IsSupported) Sse.Prefetch0(p);
    }

    /// <summary>8 bfloat16 values (their bit patterns) as float32: the bits shifted into the high half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static Vector256<float> Bf16(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    /// <summary>Whether the 512-bit kernels run (AVX-512 F and BW): half the instructions per weight, which is what the
    /// 8- and 4-bit kernels are bound by on one core.</summary>
    protected static bool Wide { get; } = Avx512F.IsSupported && Avx512BW.IsSupported && Environment.GetEnvironmentVariable("OSPREY_CPU_AVX512") != "0";

    /// <summary>16 signed bytes as float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static Vector512<float> Int8x16(sbyte* p) => Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(p)));

    /// <summary>8 signed bytes as float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static Vector256<float> Int8(sbyte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));
}

/// <summary>float32 weights [rows, cols], row-major, read in place.</summary>
internal sealed unsafe class F32Matrix(float* weights, int rows, int cols, object owner) : CpuMatrix(rows, cols)
{
    readonly object _owner = owner; // keeps the storage alive

    /// <inheritdoc />
    public override long Bytes => (long)Rows * Cols * 4;

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
    public override long Bytes => (long)Rows * Cols * 2;

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

    /// <inheritdoc />
    public override long Bytes => (long)Rows * Cols;

    /// <inheritdoc />
    public override void Multiply(float* x, float* y, int from, int to)
    {
        GC.KeepAlive(_owner);
        if (Wide) Multiply512(x, y, from, to);
        else Multiply256(x, y, from, to);
    }

    void Multiply512(float* x, float* y, int from, int to)
    {
        int k = Cols, r = from;
        for (; r + 4 <= to; r += 4)
        {
            sbyte* w0 = _codes + (long)r * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            byte* next = (byte*)(w0 + 4L * k);
            var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
            for (int i = 0; i < k; i += 32)
            {
                Prefetch(next + i * 4L);
                Prefetch(next + i * 4L + 64);
                var x0 = Avx512F.LoadVector512(x + i);
                var x1 = Avx512F.LoadVector512(x + i + 16);
                a0 = Avx512F.FusedMultiplyAdd(Int8x16(w0 + i), x0, a0); a0 = Avx512F.FusedMultiplyAdd(Int8x16(w0 + i + 16), x1, a0);
                a1 = Avx512F.FusedMultiplyAdd(Int8x16(w1 + i), x0, a1); a1 = Avx512F.FusedMultiplyAdd(Int8x16(w1 + i + 16), x1, a1);
                a2 = Avx512F.FusedMultiplyAdd(Int8x16(w2 + i), x0, a2); a2 = Avx512F.FusedMultiplyAdd(Int8x16(w2 + i + 16), x1, a2);
                a3 = Avx512F.FusedMultiplyAdd(Int8x16(w3 + i), x0, a3); a3 = Avx512F.FusedMultiplyAdd(Int8x16(w3 + i + 16), x1, a3);
            }
            y[r] = Vector512.Sum(a0) * _scales[r]; y[r + 1] = Vector512.Sum(a1) * _scales[r + 1];
            y[r + 2] = Vector512.Sum(a2) * _scales[r + 2]; y[r + 3] = Vector512.Sum(a3) * _scales[r + 3];
        }
        if (r < to) Multiply256(x, y, r, to);
    }

    void Multiply256(float* x, float* y, int from, int to)
    {
        int k = Cols, r = from;
        for (; r + 4 <= to; r += 4)
        {
            sbyte* w0 = _codes + (long)r * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            byte* next = (byte*)(w0 + 4L * k);
            var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
            for (int i = 0; i < k; i += 16)
            {
                Prefetch(next + i * 4L);
                var x0 = Avx.LoadVector256(x + i);
                var x1 = Avx.LoadVector256(x + i + 8);
                a0 = Fma.MultiplyAdd(Int8(w0 + i), x0, a0); a0 = Fma.MultiplyAdd(Int8(w0 + i + 8), x1, a0);
                a1 = Fma.MultiplyAdd(Int8(w1 + i), x0, a1); a1 = Fma.MultiplyAdd(Int8(w1 + i + 8), x1, a1);
                a2 = Fma.MultiplyAdd(Int8(w2 + i), x0, a2); a2 = Fma.MultiplyAdd(Int8(w2 + i + 8), x1, a2);
                a3 = Fma.MultiplyAdd(Int8(w3 + i), x0, a3); a3 = Fma.MultiplyAdd(Int8(w3 + i + 8), x1, a3);
            }
            y[r] = Vector256.Sum(a0) * _scales[r]; y[r + 1] = Vector256.Sum(a1) * _scales[r + 1];
            y[r + 2] = Vector256.Sum(a2) * _scales[r + 2]; y[r + 3] = Vector256.Sum(a3) * _scales[r + 3];
        }
        for (; r < to; r++)
        {
            sbyte* w0 = _codes + (long)r * k;
            var a0 = Vector256<float>.Zero;
            for (int i = 0; i < k; i += 8) a0 = Fma.MultiplyAdd(Int8(w0 + i), Avx.LoadVector256(x + i), a0);
            y[r] = Vector256.Sum(a0) * _scales[r];
        }
    }

    /// <inheritdoc />
    public override void Dispose() => NativeMemory.AlignedFree(_scales);
}

/// <summary>
/// 4-bit codes in groups of columns, each (row, group) with a scale and an offset: w = code·scale + offset (GPTQ's
/// scale·(code − zero) with offset = −scale·zero). Its own layout, made once from the codes: per row, byte j holds
/// column 2j in its low nibble and column 2j + 1 in its high one. A call splits x into its even and odd columns once;
/// then 16 bytes widened to 16 lanes give the even columns' codes in their low nibbles and, shifted by 4, the odd
/// ones', and a 16-entry table lookup (<c>vpermps</c>, which reads only an index's low 4 bits) turns each into its
/// float32 value in one instruction: six instructions per 32 weights, exact in float32.
/// </summary>
internal sealed unsafe class Int4GroupMatrix : CpuMatrix
{
    readonly byte* _packed;   // [rows, cols / 2]
    readonly float* _scales;  // [rows, groups]
    readonly float* _offsets; // [rows, groups]
    readonly int _groupSize, _groups;

    /// <summary>
    /// From codes [rows, cols] (0..15), scales and offsets [rows, groups], groups of <paramref name="groupSize"/> columns
    /// (a multiple of 32).
    /// </summary>
    public Int4GroupMatrix(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<float> offsets, int rows, int cols, int groupSize) : base(rows, cols)
    {
        if (groupSize % ColumnMultiple != 0 || cols % groupSize != 0) throw new ArgumentException($"4-bit groups of {groupSize} columns do not tile {cols} columns in blocks of {ColumnMultiple}");
        (_groupSize, _groups) = (groupSize, cols / groupSize);
        if (codes.Length != (long)rows * cols || scales.Length != rows * _groups || offsets.Length != rows * _groups)
            throw new ArgumentException("codes, scales and offsets do not match the matrix shape");
        _packed = (byte*)NativeMemory.AlignedAlloc((nuint)((long)rows * cols / 2), 64);
        _scales = (float*)NativeMemory.AlignedAlloc((nuint)(scales.Length * 4), 64);
        _offsets = (float*)NativeMemory.AlignedAlloc((nuint)(offsets.Length * 4), 64);
        scales.CopyTo(new Span<float>(_scales, scales.Length));
        offsets.CopyTo(new Span<float>(_offsets, offsets.Length));
        for (long i = 0; i < (long)rows * cols; i += 2)
            _packed[i / 2] = (byte)((codes[(int)i] & 15) | ((codes[(int)i + 1] & 15) << 4));
    }

    /// <inheritdoc />
    public override long Bytes => (long)Rows * Cols / 2 + (long)Rows * _groups * 8;

    static readonly Vector512<float> s_codeValues = Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

    /// <summary>
    /// Per row: Σ_g scale_g·(Σ_{k∈g} code_k·x_k) + Σ_g offset_g·(Σ_{k∈g} x_k). The inner sums are vector FMAs of the
    /// codes' float values; the groups' sums of x are taken once per call.
    /// </summary>
    public override void Multiply(float* x, float* y, int from, int to)
    {
        int k = Cols, half = k / 2;
        var sums = stackalloc float[_groups];
        // x's even and odd columns apart (64-byte aligned for the vector loads).
        var split = stackalloc float[k + 16];
        var even = (float*)(((nint)split + 63) & ~(nint)63);
        var odd = even + half;
        for (int i = 0; i < half; i++)
        {
            even[i] = x[2 * i];
            odd[i] = x[2 * i + 1];
        }
        for (int g = 0; g < _groups; g++)
        {
            float sum = 0;
            for (int i = g * _groupSize; i < (g + 1) * _groupSize; i++) sum += x[i];
            sums[g] = sum;
        }
        int pairs = _groupSize / 2; // bytes (and even/odd columns) per group
        int r = from;
        // Four rows at a time: four independent accumulation chains (one row's groups alone would wait on each FMA's latency).
        if (Wide)
            for (; r + 4 <= to; r += 4) Rows512(r, even, odd, sums, pairs, y);
        for (; r < to; r++)
        {
            byte* w = _packed + (long)r * half;
            float* s = _scales + (long)r * _groups;
            y[r] = (Wide ? Row512(w, even, odd, s, pairs) : Row256(w, even, odd, s, pairs)) + Offsets(r, sums);
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

    void Rows512(int r, float* even, float* odd, float* sums, int pairs, float* y)
    {
        int half = Cols / 2;
        var table = s_codeValues;
        byte* w0 = _packed + (long)r * half, w1 = w0 + half, w2 = w1 + half, w3 = w2 + half;
        byte* next = w0 + 4L * half;
        float* s0 = _scales + (long)r * _groups, s1 = s0 + _groups, s2 = s1 + _groups, s3 = s2 + _groups;
        var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
        for (int g = 0; g < _groups; g++)
        {
            var p0 = Vector512<float>.Zero; var p1 = p0; var p2 = p0; var p3 = p0;
            int start = g * pairs, end = start + pairs;
            for (int j = start; j < end; j += 16)
            {
                Prefetch(next + 2L * j);
                Prefetch(next + 2L * j + 64);
                var e = Avx512F.LoadVector512(even + j);
                var o = Avx512F.LoadVector512(odd + j);
                var l0 = Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(w0 + j));
                var l1 = Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(w1 + j));
                var l2 = Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(w2 + j));
                var l3 = Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(w3 + j));
                p0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, l0), e, p0);
                p1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, l1), e, p1);
                p2 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, l2), e, p2);
                p3 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, l3), e, p3);
                p0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(l0, 4)), o, p0);
                p1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(l1, 4)), o, p1);
                p2 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(l2, 4)), o, p2);
                p3 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(l3, 4)), o, p3);
            }
            a0 = Avx512F.FusedMultiplyAdd(p0, Vector512.Create(s0[g]), a0);
            a1 = Avx512F.FusedMultiplyAdd(p1, Vector512.Create(s1[g]), a1);
            a2 = Avx512F.FusedMultiplyAdd(p2, Vector512.Create(s2[g]), a2);
            a3 = Avx512F.FusedMultiplyAdd(p3, Vector512.Create(s3[g]), a3);
        }
        y[r] = Vector512.Sum(a0) + Offsets(r, sums);
        y[r + 1] = Vector512.Sum(a1) + Offsets(r + 1, sums);
        y[r + 2] = Vector512.Sum(a2) + Offsets(r + 2, sums);
        y[r + 3] = Vector512.Sum(a3) + Offsets(r + 3, sums);
    }

    float Row512(byte* w, float* even, float* odd, float* s, int pairs)
    {
        var table = s_codeValues;
        var acc = Vector512<float>.Zero;
        for (int g = 0; g < _groups; g++)
        {
            var part = Vector512<float>.Zero;
            int start = g * pairs, end = start + pairs;
            for (int j = start; j < end; j += 16)
            {
                var lanes = Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(w + j)); // byte j+i in lane i
                part = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, lanes), Avx512F.LoadVector512(even + j), part);
                part = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(lanes, 4)), Avx512F.LoadVector512(odd + j), part);
            }
            acc = Avx512F.FusedMultiplyAdd(part, Vector512.Create(s[g]), acc);
        }
        return Vector512.Sum(acc);
    }

    float Row256(byte* w, float* even, float* odd, float* s, int pairs)
    {
        var low = Vector256.Create(15);
        var acc = Vector256<float>.Zero;
        for (int g = 0; g < _groups; g++)
        {
            var part = Vector256<float>.Zero;
            int start = g * pairs, end = start + pairs;
            for (int j = start; j < end; j += 8)
            {
                var lanes = Avx2.ConvertToVector256Int32(w + j); // byte j+i in lane i
                part = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.And(lanes, low)), Avx.LoadVector256(even + j), part);
                part = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(lanes, 4)), Avx.LoadVector256(odd + j), part);
            }
            acc = Fma.MultiplyAdd(part, Vector256.Create(s[g]), acc);
        }
        return Vector256.Sum(acc);
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        NativeMemory.AlignedFree(_packed);
        NativeMemory.AlignedFree(_scales);
        NativeMemory.AlignedFree(_offsets);
    }
}
