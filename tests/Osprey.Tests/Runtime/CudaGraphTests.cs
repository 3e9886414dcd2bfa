using Osprey.Runtime;
using Xunit;

namespace Osprey.Tests.Runtime;

public class CudaGraphTests
{
    [Fact]
    public void IsSupported_is_false_with_a_reason_without_cuda()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        Assert.False(CudaGraph.IsSupported(out var why));
        Assert.False(string.IsNullOrWhiteSpace(why));
    }

    [Fact]
    public void Constructing_a_graph_without_cuda_throws_not_supported()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var e = Assert.Throws<NotSupportedException>(() => new CudaGraph());
        Assert.Contains("CUDA graphs are not available", e.Message);
    }
}
