using System.Globalization;
using Osprey.Cli.Args;
using Osprey.Diagnostics;
using Osprey.Options;
using Osprey.Runtime;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey kernel-probe</c> (diagnostic): checks the 4-bit CUDA kernels against the tensor path and times them at a
/// 7B model's layer shapes. The work is <see cref="KernelProbe"/>'s; this verb parses flags and prints.
/// </summary>
internal sealed class KernelProbeCommand : ICommand
{
    public string Name => "kernel-probe";

    public string Summary => "Diagnostic: check the 4-bit (or, with --fused, the fused RMSNorm/RoPE/SwiGLU) CUDA kernels against the tensor path and time them at 7B layer shapes.";

    public string Usage => OptionSet.For<KernelProbeOptions>().Help();

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var o = options.Bind<KernelProbeOptions>();
        options.EnsureNoUnknownFlags();
        TorchRuntime.Initialize(DeviceSpec.Parse("cuda"), stderr);
        if (o.Fused) return RunFused(o, stdout);
        if (KernelProbe.Unavailable() is { } why)
        {
            stdout.WriteLine($"4-bit CUDA kernels unavailable: {why}");
            return 2;
        }
        var failed = false;
        stdout.WriteLine("type  dq     stored    compute   elements  mismatched  gemv_rel_err");
        foreach (var c in KernelProbe.Check())
        {
            failed |= c.Mismatched != 0 || c.GemvRelativeError > 2e-2;
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-5} {1,-6} {2,-9} {3,-9} {4,8} {5,11} {6,13:G3}",
                c.Type, c.DoubleQuant, c.StoredDType, c.ComputeDType, c.Elements, c.Mismatched, c.GemvRelativeError));
        }
        if (KernelProbe.PackedUnavailable() is { } packedWhy)
        {
            stdout.WriteLine($"GPTQ/AWQ/FP8 CUDA kernels unavailable: {packedWhy}");
            failed = true;
        }
        else
        {
            foreach (var c in KernelProbe.CheckPacked())
            {
                failed |= c.Mismatched != 0 || c.GemvRelativeError > 2e-2;
                stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-10} {1,-9} {2,-9} {3,8} {4,11} {5,13:G3}",
                    c.Type, c.StoredDType, c.ComputeDType, c.Elements, c.Mismatched, c.GemvRelativeError));
            }
            stdout.WriteLine("out    in     rows  bf16_matmul_ms  gptq4_ms  gptq4_8rows_dequant+matmul_ms");
            foreach (var rows in o.BatchSizes.Where(r => r <= KernelProbe.PackedFusedRows))
            foreach (var (n, k) in new (long, long)[] { (3584, 3584), (512, 3584), (18944, 3584), (3584, 18944) })
            {
                var t = KernelProbe.TimeGptq(n, k, rows);
                stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-6} {1,-6} {2,4} {3,15:F4} {4,9:F4} {5,30:F4}", n, k, rows, t.MatmulMs, t.GptqMs, t.GptqDequantMatmulMs));
                stdout.Flush();
            }
        }
        stdout.WriteLine("out    in     rows  bf16_matmul_ms  fused_ms  dequant_kernel_ms  dequant_tensor_ops_ms  dequant+matmul_ms");
        foreach (var rows in o.BatchSizes)
        foreach (var (n, k) in new (long, long)[] { (3584, 3584), (512, 3584), (18944, 3584), (3584, 18944) })
        {
            var t = KernelProbe.Time(n, k, rows);
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-6} {1,-6} {2,4} {3,15:F4} {4,9:F4} {5,18:F4} {6,22:F4} {7,18:F4}",
                n, k, rows, t.DenseMatmulMs, t.FusedMs, t.DequantKernelMs, t.DequantPortableMs, t.DequantThenMatmulMs));
            stdout.Flush();
        }
        stdout.WriteLine(failed ? "FAILED: a kernel disagrees with the tensor path" : "all checks passed");
        return failed ? 1 : 0;
    }

    static int RunFused(KernelProbeOptions o, TextWriter stdout)
    {
        if (FusedKernelProbe.Unavailable() is { } why)
        {
            stdout.WriteLine($"fused CUDA kernels unavailable: {why}");
            return 2;
        }
        var failed = false;
        stdout.WriteLine("kernel                            dtype     elements  mismatched  rel_err     limit     result");
        foreach (var c in FusedKernelProbe.Check())
        {
            failed |= !c.Passed;
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-33} {1,-9} {2,8} {3,11} {4,-11:G3} {5,-9:G3} {6}",
                c.Kernel, c.DType, c.Elements, c.Mismatched, c.RelativeError, c.Limit, c.Passed ? "ok" : "FAILED"));
        }
        stdout.WriteLine("kernel (bf16, 7B shapes)          rows   tensor_ops_ms  fused_ms  speed-up");
        foreach (var rows in o.BatchSizes)
        foreach (var t in FusedKernelProbe.Time(rows))
        {
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-33} {1,5} {2,15:F4} {3,9:F4} {4,9:F2}",
                t.Kernel, t.Rows, t.TensorOpsMs, t.FusedMs, t.TensorOpsMs / t.FusedMs));
            stdout.Flush();
        }
        stdout.WriteLine(failed ? "FAILED: a fused kernel disagrees with the tensor path" : "all checks passed");
        return failed ? 1 : 0;
    }
}
