using System.Diagnostics;
using Osprey.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Diagnostics;

/// <summary>
/// Checks and times the 4-bit CUDA kernels (<see cref="FourBitKernels"/>) on this machine's GPU: the one-pass
/// dequantization must give the tensor path's values bit for bit for every 4-bit type, double quantization on and off and
/// each stored/compute dtype; the fused decode product must match a matmul of the dequantized weight to rounding; and
/// at a 7B model's layer shapes it times the fused product against a bf16 matmul and both dequantizations.
/// <c>osprey kernel-probe</c> prints what it returns.
/// </summary>
public static class KernelProbe
{
    /// <summary>Why the kernels can't run here, or null when they can (CUDA device 0).</summary>
    public static string? Unavailable()
    {
        using var probe = zeros(1, device: new Device(DeviceType.CUDA, 0));
        return FourBitKernels.Unavailable(probe);
    }

    /// <summary>Every combination on a random 192 × 1024 weight; see <see cref="KernelCheck"/>.</summary>
    public static IReadOnlyList<KernelCheck> Check()
    {
        var device = new Device(DeviceType.CUDA, 0);
        var results = new List<KernelCheck>();
        using var g = new Generator(3, CPU); // TorchSharp's generators are CPU ones: draw on the CPU, then move
        foreach (var type in new[] { FourBitType.Nf4, FourBitType.Fp4 })
        foreach (var dq in new[] { true, false })
        foreach (var (stored, compute) in new[] { (ScalarType.BFloat16, ScalarType.BFloat16), (ScalarType.Float16, ScalarType.Float16),
                     (ScalarType.Float32, ScalarType.Float32), (ScalarType.BFloat16, ScalarType.Float32) })
        {
            using var scope = NewDisposeScope();
            var dense = randn([192, 1024], generator: g).to(device).to_type(stored);
            using var w = FourBitWeight.Quantize(dense, type, dq, compute);
            var fast = FourBitKernels.Dequantize(w);
            var portable = w.DequantizePortable();
            var mismatched = fast.ne(portable).sum().item<long>();
            double worstGemv = 0;
            foreach (var rows in new[] { 1, 3, FourBitKernels.MaxFusedRows })
            {
                var x = randn([rows, 1024], generator: g).to(device).to_type(compute);
                var fused = FourBitKernels.TryGemv(w, x) ?? throw new InvalidOperationException("the fused product refused a shape it takes");
                var reference = nn.functional.linear(x.to_type(ScalarType.Float32), portable.to_type(ScalarType.Float32));
                var error = (fused.to_type(ScalarType.Float32) - reference).abs().max().item<float>() / reference.abs().max().item<float>();
                worstGemv = Math.Max(worstGemv, error);
            }
            results.Add(new KernelCheck(FourBitWeight.TypeName(type), dq, Runtime.DTypes.Name(stored), Runtime.DTypes.Name(compute), fast.numel(), mismatched, worstGemv));
        }
        return results;
    }

    /// <summary>Milliseconds per call at one layer shape [out, in] for NF4 + double quantization in bfloat16.</summary>
    public static KernelTiming Time(long outFeatures, long inFeatures, int rows, int iterations = 50)
    {
        var device = new Device(DeviceType.CUDA, 0);
        using var scope = NewDisposeScope();
        using var g = new Generator(4, CPU);
        var dense = randn([outFeatures, inFeatures], generator: g).to(device).to_type(ScalarType.BFloat16);
        using var w = FourBitWeight.Quantize(dense, FourBitType.Nf4, true, ScalarType.BFloat16);
        var x = randn([rows, inFeatures], generator: g).to(device).to_type(ScalarType.BFloat16);
        double Ms(Action a) => KernelProbe.Milliseconds(device, iterations, a);
        var matmul = Ms(() => { using var y = nn.functional.linear(x, dense); });
        var fused = Ms(() => { using var y = FourBitKernels.TryGemv(w, x); });
        var dequantKernel = Ms(() => { using var y = FourBitKernels.Dequantize(w); });
        var dequantPortable = Ms(() => { using var y = w.DequantizePortable(); });
        var dequantMatmul = Ms(() => { using var d = FourBitKernels.Dequantize(w); using var y = nn.functional.linear(x, d); });
        return new KernelTiming(outFeatures, inFeatures, rows, matmul, fused, dequantKernel, dequantPortable, dequantMatmul);
    }

    /// <summary>Why the GPTQ/FP8 CUDA kernels can't run here, or null when they can (CUDA device 0).</summary>
    public static string? PackedUnavailable()
    {
        PackedWeightKernels.ForceOn = true; // the probe checks them whatever OSPREY_FUSED_PACKED says
        using var probe = zeros(1, device: new Device(DeviceType.CUDA, 0));
        return PackedWeightKernels.Unavailable(probe);
    }

    /// <summary>Rows up to which the GPTQ product is fused.</summary>
    public const int PackedFusedRows = PackedWeightKernels.MaxFusedRows;

    /// <summary>
    /// GPTQ (4 and 8 bits, contiguous groups of 128 and an act-order permutation), AWQ (4 bits, groups of 128) and FP8 (block, row and tensor scales)
    /// on a random 256 × 1024 weight: the CUDA dequantizing kernels against the tensor path (elements that differ), and
    /// the fused GPTQ product at 1, 3 and 4 rows plus the dequantize-and-matmul path at 8 rows against a float32 matmul of
    /// the tensor path's weight (largest error relative to the largest output).
    /// </summary>
    public static IReadOnlyList<KernelCheck> CheckPacked()
    {
        var device = new Device(DeviceType.CUDA, 0);
        var results = new List<KernelCheck>();
        using var g = new Generator(5, CPU);
        const long Out = 256, In = 1024;
        foreach (var bits in new[] { 4, 8 })
        foreach (var actOrder in new[] { false, true })
        foreach (var compute in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float32 })
        {
            using var scope = NewDisposeScope();
            var groups = In / 128;
            var groupIndex = arange(In, dtype: ScalarType.Int64).div(128, rounding_mode: RoundingMode.floor);
            if (actOrder) groupIndex = groupIndex.index_select(0, randperm(In, generator: g));
            var codes = randint(0, 1 << bits, [Out, In], generator: g).to_type(ScalarType.Int32).to(device);
            var zeros = randint(1, 1 << bits, [groups, Out], generator: g).to_type(ScalarType.Int32).to(device);
            var scales = (rand([groups, Out], generator: g) * 0.01 + 0.001).to(device);
            using var result = new GptqResult(codes, scales, zeros, groupIndex.to_type(ScalarType.Int32).to(device), empty(0));
            using var w = GptqWeight.Pack(result, bits, compute);
            var fast = w.Dequantize();
            var portable = w.DequantizePortable();
            var mismatched = fast.ne(portable).sum().item<long>();
            double worst = 0;
            foreach (var rows in new[] { 1, 3, 4, 8 })
            {
                var x = randn([rows, In], generator: g).to(device).to_type(compute);
                var y = w.TryFusedLinear(x) ?? throw new InvalidOperationException("the GPTQ CUDA path refused a shape it takes");
                var reference = nn.functional.linear(x.to_type(ScalarType.Float32), portable.to_type(ScalarType.Float32));
                worst = Math.Max(worst, (y.to_type(ScalarType.Float32) - reference).abs().max().item<float>() / reference.abs().max().item<float>());
            }
            results.Add(new KernelCheck($"gptq{bits}{(actOrder ? "-act" : "")}", false, "float16", Runtime.DTypes.Name(compute), fast.numel(), mismatched, worst));
        }
        foreach (var compute in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float32 })
        {
            using var scope = NewDisposeScope();
            var groups = In / 128;
            var codes = randint(0, 16, [Out, In], generator: g).to_type(ScalarType.Int32).to(device);
            var zeros = randint(0, 16, [groups, Out], generator: g).to_type(ScalarType.Int32).to(device);
            var scales = (rand([groups, Out], generator: g) * 0.01 + 0.001).to(device);
            using var w = AwqWeight.Pack(codes, scales, zeros, 128, compute);
            var fast = w.Dequantize();
            var portable = w.DequantizePortable();
            double worst = 0;
            foreach (var rows in new[] { 1, 8 })
            {
                var x = randn([rows, In], generator: g).to(device).to_type(compute);
                var y = w.TryFusedLinear(x) ?? throw new InvalidOperationException("the AWQ CUDA path refused a shape it takes");
                var reference = nn.functional.linear(x.to_type(ScalarType.Float32), portable.to_type(ScalarType.Float32));
                worst = Math.Max(worst, (y.to_type(ScalarType.Float32) - reference).abs().max().item<float>() / reference.abs().max().item<float>());
            }
            results.Add(new KernelCheck("awq4", false, "float16", Runtime.DTypes.Name(compute), fast.numel(), fast.ne(portable).sum().item<long>(), worst));
        }
        foreach (var scheme in new[] { Fp8Scheme.Block, Fp8Scheme.Channel, Fp8Scheme.Tensor })
        foreach (var compute in new[] { ScalarType.BFloat16, ScalarType.Float32 })
        {
            using var scope = NewDisposeScope();
            var dense = randn([Out + 8, In + 40], generator: g).to(device); // not whole 128-blocks: the edges count too
            using var w = Fp8Weight.Quantize(dense, scheme, compute);
            var fast = w.Dequantize();
            var portable = w.DequantizePortable();
            results.Add(new KernelCheck($"fp8-{scheme.ToString().ToLowerInvariant()}", false, "e4m3", Runtime.DTypes.Name(compute), fast.numel(), fast.ne(portable).sum().item<long>(), 0));
        }
        return results;
    }

    /// <summary>Milliseconds per call of the GPTQ 4-bit CUDA product (group 128) against a bfloat16 matmul at [out, in].</summary>
    public static (double MatmulMs, double GptqMs, double GptqDequantMatmulMs) TimeGptq(long outFeatures, long inFeatures, int rows, int iterations = 50)
    {
        var device = new Device(DeviceType.CUDA, 0);
        using var scope = NewDisposeScope();
        using var g = new Generator(6, CPU);
        var groups = inFeatures / 128;
        var codes = randint(0, 16, [outFeatures, inFeatures], generator: g).to_type(ScalarType.Int32).to(device);
        var zeros = randint(1, 16, [groups, outFeatures], generator: g).to_type(ScalarType.Int32).to(device);
        var scales = (rand([groups, outFeatures], generator: g) * 0.01 + 0.001).to(device);
        var groupIndex = arange(inFeatures, dtype: ScalarType.Int32).div(128, rounding_mode: RoundingMode.floor).to_type(ScalarType.Int32).to(device);
        using var result = new GptqResult(codes, scales, zeros, groupIndex, empty(0));
        using var w = GptqWeight.Pack(result, 4, ScalarType.BFloat16);
        using var dense = w.DequantizePortable();
        var x = randn([rows, inFeatures], generator: g).to(device).to_type(ScalarType.BFloat16);
        var big = randn([8, inFeatures], generator: g).to(device).to_type(ScalarType.BFloat16);
        double Ms(Action a) => KernelProbe.Milliseconds(device, iterations, a);
        return (Ms(() => { using var y = nn.functional.linear(x, dense); }), Ms(() => { using var y = w.TryFusedLinear(x); }), Ms(() => { using var y = w.TryFusedLinear(big); }));
    }

    /// <summary>Milliseconds per call of <paramref name="a"/> on <paramref name="device"/>: 3 warm-up calls, then the mean of <paramref name="iterations"/>, synchronised at both ends.</summary>
    internal static double Milliseconds(Device device, int iterations, Action a)
    {
        for (int i = 0; i < 3; i++) a();
        cuda.synchronize(device);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) a();
        cuda.synchronize(device);
        return clock.Elapsed.TotalMilliseconds / iterations;
    }
}
