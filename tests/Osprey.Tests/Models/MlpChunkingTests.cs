using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// Long inputs run the MLP in row chunks, and large ones multiply gate and up separately; the result must
/// equal the one-pass result. Runs alone because it
/// changes a process-wide setting.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class MlpChunkingTests
{
    [Theory]
    [InlineData("llama")]
    [InlineData("phi3")]
    public void ChunkedAndSplitMlpGiveTheSameLogits(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", family), CPU, ScalarType.Float32);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = randint(3, 256, [2, 11], generator: new torch.Generator(5, CPU));
        var whole = model.Forward(ids);
        var (savedChunk, savedSplit) = (Mlp.ChunkTokens, Mlp.SplitRows);
        try
        {
            foreach (var (chunk, split) in new (long, long)[] { (4, 1 << 20), (1 << 20, 1), (4, 1) })
            {
                // 22 rows: chunks of 4, 4, 4, 4, 4, 2; split = separate gate and up multiplies.
                (Mlp.ChunkTokens, Mlp.SplitRows) = (chunk, split);
                var other = model.Forward(ids);
                Assert.Equal(whole.shape, other.shape);
                var diff = (whole - other).abs().max().item<float>();
                Assert.True(diff <= 1e-5f, $"chunk {chunk}, split {split}: logits moved by {diff}");
            }
        }
        finally
        {
            (Mlp.ChunkTokens, Mlp.SplitRows) = (savedChunk, savedSplit);
        }
    }
}
