using Osprey.Quantization;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// The CPU weight-packed products (libtorch's int8 and int4 kernels behind <see cref="Int8Weight"/> and
/// <see cref="GptqWeight"/>) against the weights' defining formulas evaluated here in double precision, straight from
/// the random codes, zero points and scales the test draws: LLM.int8's W = code·SCB/127 and GPTQ's
/// W = scale·(q − zero), y = x Wᵀ. Neither reference goes through Osprey's own dequantization.
/// </summary>
public sealed class CpuPackedMatmulTests
{
    const int Rows = 3, In = 128, Out = 48;

    static double[] Expected(float[] x, Func<int, int, double> weight)
    {
        var y = new double[Rows * Out];
        for (int m = 0; m < Rows; m++)
            for (int n = 0; n < Out; n++)
            {
                double sum = 0;
                for (int k = 0; k < In; k++) sum += x[m * In + k] * weight(n, k);
                y[m * Out + n] = sum;
            }
        return y;
    }

    static void AssertClose(double[] expected, Tensor got, double relative, string what)
    {
        var values = got.to_type(ScalarType.Float32).data<float>().ToArray();
        Assert.Equal(expected.Length, values.Length);
        var scale = expected.Max(Math.Abs);
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(values[i] - expected[i]) <= relative * scale, $"{what}: element {i} is {values[i]}, the formula gives {expected[i]} (tolerance {relative * scale:E2})");
    }

    // Multiples of 1/128 in [-1, 1): exact in bfloat16 too, so the reference needs no rounding of its own.
    static float[] RandomInputs(Random rng) => Enumerable.Range(0, Rows * In).Select(_ => rng.Next(-128, 128) / 128f).ToArray();

    [Theory]
    [InlineData(ScalarType.Float32, 1e-5)]
    [InlineData(ScalarType.BFloat16, 1e-2)]
    public void Int8CodesTimesRowScalesMatchTheFormula(ScalarType dtype, double tolerance)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        Assert.Null(CpuPackedMatmul.Unavailable());
        var rng = new Random(3);
        var codes = Enumerable.Range(0, Out * In).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
        var absmax = Enumerable.Range(0, Out).Select(_ => (float)(0.01 + rng.NextDouble())).ToArray();
        var x = RandomInputs(rng);
        var expected = Expected(x, (n, k) => codes[n * In + k] * (double)absmax[n] / 127.0);

        using var weight = new Int8Weight(tensor(codes, [Out, In]), tensor(absmax), dtype);
        using var input = tensor(x, [1, Rows, In]).to_type(dtype);
        using var _ = no_grad();
        using var y = weight.TryFusedLinear(input);
        Assert.NotNull(y);
        Assert.Equal(new long[] { 1, Rows, Out }, y!.shape);
        Assert.Equal(dtype, y.dtype);
        AssertClose(expected, y, tolerance, $"int8 {dtype}");
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, 32, 1e-2)]
    [InlineData(ScalarType.BFloat16, 64, 1e-2)]
    public void Int4GptqCodesMatchTheFormula(ScalarType dtype, int groupSize, double tolerance)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var rng = new Random(groupSize);
        int groups = In / groupSize;
        var q = Enumerable.Range(0, Out * In).Select(_ => rng.Next(0, 16)).ToArray();           // [out, in]
        var zero = Enumerable.Range(0, groups * Out).Select(_ => rng.Next(1, 16)).ToArray();     // [groups, out]; v1 stores zero − 1 ≥ 0
        // fp16-representable scales (GPTQ stores them in fp16): multiples of 2^-12 below 0.06.
        var scale = Enumerable.Range(0, groups * Out).Select(_ => (float)(rng.Next(1, 256) / 4096.0)).ToArray();
        var x = RandomInputs(rng);
        var expected = Expected(x, (n, k) => scale[k / groupSize * Out + n] * (double)(q[n * In + k] - zero[k / groupSize * Out + n]));

        using var result = new GptqResult(tensor(q, [Out, In]), tensor(scale, [groups, Out]), tensor(zero, [groups, Out]),
            arange(In, dtype: ScalarType.Int32).div(groupSize, rounding_mode: RoundingMode.floor), zeros(Out, In));
        using var weight = GptqWeight.Pack(result, 4, dtype);
        using var input = tensor(x, [Rows, In]).to_type(dtype);
        using var _ = no_grad();
        using var y = weight.TryFusedLinear(input);
        Assert.NotNull(y);
        Assert.Equal(new long[] { Rows, Out }, y!.shape);
        AssertClose(expected, y, tolerance, $"int4 group {groupSize} {dtype}");
    }

    [Fact]
    public void ActOrderGroupsFallBackToTheDequantizedProduct()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var rng = new Random(5);
        var gIdx = Enumerable.Range(0, In).Select(k => (k * 7 % In) / 32).ToArray(); // every group scattered over the inputs
        using var result = new GptqResult(randint(0, 16, [Out, In], dtype: ScalarType.Int32), full(4, Out, 1f / 64), full(4, Out, 8, dtype: ScalarType.Int32),
            tensor(gIdx), zeros(Out, In));
        using var weight = GptqWeight.Pack(result, 4, ScalarType.BFloat16);
        using var input = tensor(RandomInputs(rng), [Rows, In]).to_type(ScalarType.BFloat16);
        Assert.Null(weight.TryFusedLinear(input));
    }
}
