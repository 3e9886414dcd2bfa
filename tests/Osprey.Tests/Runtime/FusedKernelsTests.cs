using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Osprey.Tests.Runtime;

/// <summary>
/// The CPU side of the fused CUDA kernels: they never run on the CPU (the tensor path does), the layouts they accept,
/// and the on-disk cubin cache. Their numbers are checked on the GPU by <c>osprey kernel-probe --fused</c>.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public class FusedKernelsTests
{
    [Fact]
    public void Cpu_tensors_take_the_tensor_path()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var x = ones(2, 3);
        Assert.False(FusedKernels.Usable(x));
    }

    [Fact]
    public void Rows_must_be_evenly_strided_with_unit_stride_inside()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var x = zeros(2, 3, 8);
        Assert.True(FusedKernels.RowsEvenlyStrided(x));
        using var half = x.narrow(-1, 4, 4); // the up half of a stacked gate/up output: rows 8 apart
        Assert.True(FusedKernels.RowsEvenlyStrided(half));
        using var t = x.transpose(1, 2); // unit stride lost inside a row
        Assert.False(FusedKernels.RowsEvenlyStrided(t));
        using var some = x.narrow(1, 0, 2); // rows 8 apart within a batch entry but 24 between entries
        Assert.False(FusedKernels.RowsEvenlyStrided(some));
        // One row per batch entry: the rows are 24 apart but the kernel steps by the second-last stride (8), so refused.
        using var single = x.narrow(1, 1, 1);
        Assert.False(FusedKernels.RowsEvenlyStrided(single));
    }

    [Fact]
    public void Rope_takes_the_heads_of_a_stacked_projection_and_refuses_mismatched_tables()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var stacked = zeros(2, 5, 8, 16);
        using var heads = stacked.narrow(2, 0, 6);
        using var cos = zeros(2, 1, 5, 16);
        using var sin = zeros(2, 1, 5, 16);
        Assert.True(FusedKernels.RopeFits(heads, cos, sin));
        using var shared = zeros(1, 1, 5, 8); // one batch row of tables, partial rotary
        Assert.True(FusedKernels.RopeFits(heads, shared, shared));
        using var shortTables = zeros(2, 1, 4, 16); // fewer positions than the input has
        Assert.False(FusedKernels.RopeFits(heads, shortTables, shortTables));
        using var half = cos.to_type(ScalarType.BFloat16); // tables of another dtype
        Assert.False(FusedKernels.RopeFits(heads, half, half));
        using var wide = zeros(2, 1, 5, 32); // wider than a head
        Assert.False(FusedKernels.RopeFits(heads, wide, wide));
    }

    [Fact]
    public void The_cache_returns_an_image_compiled_earlier_without_compiling_again()
    {
        using var dir = new TempDirectory();
        var before = Environment.GetEnvironmentVariable("OSPREY_KERNEL_CACHE");
        Environment.SetEnvironmentVariable("OSPREY_KERNEL_CACHE", dir.Path);
        try
        {
            const string source = "extern \"C\" __global__ void k() {}";
            string[] options = ["--fmad=false"];
            var name = KernelCache.FileName("probe", source, 9, 0, options);
            byte[] image = [1, 2, 3, 4];
            File.WriteAllBytes(dir.File(name), image);
            // No NVRTC exists on this machine: an image is only returned if it came from the cache.
            Assert.Equal(image, KernelCache.CompileCubin(source, "probe", 9, 0, options));
            // Another source, other options or another architecture is another file.
            Assert.NotEqual(name, KernelCache.FileName("probe", source + " ", 9, 0, options));
            Assert.NotEqual(name, KernelCache.FileName("probe", source, 9, 0, ["--fmad=true"]));
            Assert.NotEqual(name, KernelCache.FileName("probe", source, 8, 0, options));
            Assert.Throws<OspreyException>(() => KernelCache.CompileCubin(source + " ", "probe", 9, 0, options));
        }
        finally
        {
            Environment.SetEnvironmentVariable("OSPREY_KERNEL_CACHE", before);
        }
    }
}
