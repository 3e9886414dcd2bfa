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
/// scale·(code − zero) with offset = −scale·zero). Its own layout, made once from the codes: per row, per block of 32
/// columns, 16 bytes where byte j holds column j in its low nibble and column j + 16 in its high one, so a block
/// unpacks with one mask and one shift into two runs of 16 columns in order.
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
        for (long r = 0; r < rows; r++)
        {
            var row = codes.Slice((int)(r * cols), cols);
            var dst = _packed + r * cols / 2;
            for (int b = 0; b < cols; b += 32)
                for (int j = 0; j < 16; j++)
                    dst[b / 2 + j] = (byte)((row[b + j] & 15) | ((row[b + j + 16] & 15) << 4));
        }
    }

    /// <inheritdoc />
    public override long Bytes => (long)Rows * Cols / 2 + (long)Rows * _groups * 8;

    /// <inheritdoc />
    public override void Multiply(float* x, float* y, int from, int to)
    {
        int k = Cols, half = k / 2;
        var low = Vector128.Create((byte)15);
        for (int r = from; r < to; r++)
        {
            byte* w = _packed + (long)r * half;
            float* s = _scales + (long)r * _groups, o = _offsets + (long)r * _groups;
            Prefetch(w + half);
            Prefetch(w + half + 64);
            var acc = Vector256<float>.Zero;
            for (int g = 0; g < _groups; g++)
            {
                var scale = Vector256.Create(s[g]);
                var offset = Vector256.Create(o[g]);
                int end = (g + 1) * _groupSize;
                for (int i = g * _groupSize; i < end; i += 32)
                {
                    var bytes = Sse2.LoadVector128(w + i / 2);
                    var lo = Sse2.And(bytes, low);
                    var hi = Sse2.And(Sse2.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte(), low);
                    acc = Fma.MultiplyAdd(Fma.MultiplyAdd(Codes(lo), scale, offset), Avx.LoadVector256(x + i), acc);
                    acc = Fma.MultiplyAdd(Fma.MultiplyAdd(Codes(Sse2.ShiftRightLogical128BitLane(lo, 8)), scale, offset), Avx.LoadVector256(x + i + 8), acc);
                    acc = Fma.MultiplyAdd(Fma.MultiplyAdd(Codes(hi), scale, offset), Avx.LoadVector256(x + i + 16), acc);
                    acc = Fma.MultiplyAdd(Fma.MultiplyAdd(Codes(Sse2.ShiftRightLogical128BitLane(hi, 8)), scale, offset), Avx.LoadVector256(x + i + 24), acc);
                }
            }
            y[r] = Vector256.Sum(acc);
        }
    }

    /// <summary>The low 8 bytes as float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Codes(Vector128<byte> v) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(v));

    /// <inheritdoc />
    public override void Dispose()
    {
        NativeMemory.AlignedFree(_packed);
        NativeMemory.AlignedFree(_scales);
        NativeMemory.AlignedFree(_offsets);
    }
}
