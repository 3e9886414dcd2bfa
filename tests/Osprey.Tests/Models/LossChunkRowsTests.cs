using Osprey.Models;
using Osprey.Training;
using Xunit;

namespace Osprey.Tests.Models;

public class LossChunkRowsTests
{
    [Theory]
    [InlineData(151936L, 2L, 4.0)] // Qwen2's vocabulary in bf16: 4x the rows
    [InlineData(151936L, 4L, 2.5)] // float32: 2.5x
    [InlineData(32000L, 2L, 4.0)]
    public void WideChunksHoldTheTensorPathsChunkMemory(long vocab, long elementSize, double factor)
    {
        var rows = TrainingSession.LossChunkRowsFor(vocab);
        var wide = CausalLM.WideChunkRows(rows, elementSize);
        // The tensor path's chunk: logits in the model dtype, float32 copy, log-softmax and gradient, the cast back.
        var tensorBytes = rows * vocab * (2 * elementSize + 12);
        // The fused path's chunk: the stored logits and their gradient.
        var fusedBytes = wide * vocab * 2 * elementSize;
        Assert.True(fusedBytes <= tensorBytes, $"{fusedBytes} > {tensorBytes}");
        Assert.True(fusedBytes > tensorBytes - vocab * 2 * elementSize, "a whole row more would still fit");
        Assert.Equal(factor, (double)wide / rows, 2);
    }
}
