using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Runtime.Cpu;
using static TorchSharp.torch;

namespace Osprey.Tests.Runtime;

/// <summary>
/// The managed CPU decoder's matrix kernels (<see cref="CpuMatrix"/>) against the weights' defining formulas worked here
/// in double precision from the values the test draws: dense float32 and bfloat16 rows (bfloat16 = the high 16 bits of a
/// float32), LLM.int8's W = code·SCB/127 per row, and GPTQ's W = scale·(q − zero) per group, through GptqWeight's own
/// repacking. Row counts that are not a multiple of 4 and partial row ranges check the kernels' tails and bounds.
/// </summary>
public sealed unsafe class CpuMatrixTests
{
    const int In = 128, Out = 39;

    static float[] Inputs(Random rng) => Enumerable.Range(0, In).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    static float[] Run(CpuMatrix m, float[] x, int from, int to)
    {
        var y = new float[Out];
        Array.Fill(y, float.NaN); // rows outside [from, to) must stay untouched
        fixed (float* xp = x)
        fixed (float* yp = y)
            m.Multiply(xp, yp, from, to);
        return y;
    }

    /// <summary>The 16-bit rounding step of x's group of each column (0: the kernel does not round x).</summary>
    static Func<int, double> Steps(float[] x, int group) => k =>
    {
        var g = k / group * group;
        return x.Skip(g).Take(group).Max(Math.Abs) / 32767.0;
    };

    static void AssertRows(Func<int, int, double> weight, float[] x, float[] y, int from, int to, double relative, Func<int, double>? step = null)
    {
        for (int n = 0; n < Out; n++)
        {
            if (n < from || n >= to)
            {
                Assert.True(float.IsNaN(y[n]), $"row {n} is outside [{from}, {to}) but was written");
                continue;
            }
            double sum = 0, scale = 0, rounding = 0;
            for (int k = 0; k < In; k++)
            {
                sum += x[k] * weight(n, k);
                scale += Math.Abs(x[k] * weight(n, k));
                rounding += Math.Abs(weight(n, k)) * (step?.Invoke(k) ?? 0) / 2;
            }
            Assert.True(Math.Abs(y[n] - sum) <= relative * scale + rounding + 1e-12, $"row {n}: {y[n]}, the formula gives {sum} (bound {relative * scale + rounding:E2})");
        }
    }

    [Theory]
    [InlineData(0, Out)]
    [InlineData(5, 22)]
    public void DenseFloat32AndBfloat16RowsMatchTheFormula(int from, int to)
    {
        Assert.True(CpuMatrix.Supported, "the managed CPU kernels need AVX2 and FMA (x86-64 since 2013)");
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var rng = new Random(1);
        var w = Enumerable.Range(0, Out * In).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x = Inputs(rng);
        using var f32 = tensor(w, [Out, In]);
        using var f = new F32Matrix((float*)TensorMemory.Address(f32), Out, In, f32);
        AssertRows((n, k) => w[n * In + k], x, Run(f, x, from, to), from, to, 1e-6);

        using var bf16 = f32.to_type(ScalarType.BFloat16);
        using var rounded = bf16.to_type(ScalarType.Float32);
        var wb = rounded.data<float>().ToArray();
        using var b = new Bf16Matrix((ushort*)TensorMemory.Address(bf16), Out, In, bf16);
        AssertRows((n, k) => wb[n * In + k], x, Run(b, x, from, to), from, to, 1e-6);
    }

    [Fact]
    public void Int8RowsMatchLlmInt8sFormula()
    {
        Assert.True(CpuMatrix.Supported, "the managed CPU kernels need AVX2 and FMA (x86-64 since 2013)");
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var rng = new Random(2);
        var codes = Enumerable.Range(0, Out * In).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
        var absmax = Enumerable.Range(0, Out).Select(_ => (float)(0.01 + rng.NextDouble())).ToArray();
        var x = Inputs(rng);
        using var weight = new Int8Weight(tensor(codes, [Out, In]), tensor(absmax), ScalarType.Float32);
        var m = weight.CpuMatrix();
        Assert.NotNull(m);
        Assert.Same(m, weight.CpuMatrix()); // made once, owned by the weight
        AssertRows((n, k) => codes[n * In + k] * (double)absmax[n] / 127.0, x, Run(m!, x, 0, Out), 0, Out, 1e-6, Steps(x, In));
    }

    [Theory]
    [InlineData(32, true)]
    [InlineData(64, true)]
    [InlineData(128, true)]
    [InlineData(32, false)]
    [InlineData(128, false)]
    public void Int4GroupsMatchGptqsFormula(int groupSize, bool vnni)
    {
        // Both ways of taking the integer products (AVX-VNNI's vpdpwssd where the CPU has it, else AVX2's vpmaddwd + add).
        var before = Int4GroupMatrix.UseVnni;
        Int4GroupMatrix.UseVnni = vnni;
        try { Int4Groups(groupSize); }
        finally { Int4GroupMatrix.UseVnni = before; }
    }

    static void Int4Groups(int groupSize)
    {
        Assert.True(CpuMatrix.Supported, "the managed CPU kernels need AVX2 and FMA (x86-64 since 2013)");
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        const int out4 = 48; // GPTQ packs eight outputs of zeros per int32
        var rng = new Random(groupSize);
        int groups = In / groupSize;
        var q = Enumerable.Range(0, out4 * In).Select(_ => rng.Next(0, 16)).ToArray();
        var zero = Enumerable.Range(0, groups * out4).Select(_ => rng.Next(1, 16)).ToArray();
        var scale = Enumerable.Range(0, groups * out4).Select(_ => (float)(rng.Next(1, 256) / 4096.0)).ToArray();
        var x = Inputs(rng);
        using var result = new GptqResult(tensor(q, [out4, In]), tensor(scale, [groups, out4]), tensor(zero, [groups, out4]),
            arange(In, dtype: ScalarType.Int32).div(groupSize, rounding_mode: RoundingMode.floor), zeros(out4, In));
        using var weight = GptqWeight.Pack(result, 4, ScalarType.Float32);
        var m = weight.CpuMatrix();
        Assert.NotNull(m);
        var y = new float[out4];
        fixed (float* xp = x)
        fixed (float* yp = y)
            m!.Multiply(xp, yp, 0, out4);
        var step = Steps(x, groupSize);
        for (int n = 0; n < out4; n++)
        {
            double sum = 0, size = 0, rounding = 0;
            for (int k = 0; k < In; k++)
            {
                var w = scale[k / groupSize * out4 + n] * (double)(q[n * In + k] - zero[k / groupSize * out4 + n]);
                sum += x[k] * w;
                size += Math.Abs(x[k] * w);
                rounding += Math.Abs(w) * step(k) / 2;
            }
            Assert.True(Math.Abs(y[n] - sum) <= 1e-6 * size + rounding + 1e-12, $"row {n}: {y[n]}, the formula gives {sum} (bound {1e-6 * size + rounding:E2})");
            Assert.True(rounding < 1e-3 * size, "the rounding bound is loose enough to pass anything");
        }
    }

    [Fact]
    public void ActOrderGptqHasNoCpuMatrix()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var gIdx = Enumerable.Range(0, In).Select(k => (k * 7 % In) / 32).ToArray();
        using var result = new GptqResult(randint(0, 16, [48, In], dtype: ScalarType.Int32), full(4, 48, 1f / 64), full(4, 48, 8, dtype: ScalarType.Int32),
            tensor(gIdx), zeros(48, In));
        using var weight = GptqWeight.Pack(result, 4, ScalarType.Float32);
        Assert.Null(weight.CpuMatrix());
    }

    [Theory]
    [InlineData(1, 100, 4)]
    [InlineData(2, 100, 4)]
    [InlineData(3, 7, 1)]
    [InlineData(3, 1000, 16)]
    [InlineData(4, 3, 4)]
    public void WorkersCoverEveryIndexOnceInAlignedParts(int threads, int count, int align)
    {
        using var workers = new CpuWorkers(threads);
        for (int round = 0; round < 50; round++)
        {
            var hits = new int[count];
            var starts = new System.Collections.Concurrent.ConcurrentBag<int>();
            workers.Run(count, align, (from, to) =>
            {
                starts.Add(from);
                for (int i = from; i < to; i++) Interlocked.Increment(ref hits[i]);
            });
            Assert.All(hits, h => Assert.Equal(1, h));
            Assert.All(starts, s => Assert.Equal(0, s % align));
        }
        // A failure in any part (here the last one, a worker's whenever there are several) reaches the caller as it was thrown.
        Assert.Throws<InvalidOperationException>(() => workers.Run(count, align, (_, to) => { if (to == count) throw new InvalidOperationException("boom"); }));
        // And the team still works afterwards.
        var after = 0;
        workers.Run(count, align, (from, to) => Interlocked.Add(ref after, to - from));
        Assert.Equal(count, after);
    }
}
