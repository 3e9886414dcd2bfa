using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// Long inputs run the MLP in row chunks; the result must equal the one-pass result. Runs alone because it
/// changes a process-wide setting.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class MlpChunkingTests
{
    [Theory]
    [InlineData("llama")]
    [InlineData("phi3")]
    public void ChunkedMlpGivesTheSameLogits(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", family), CPU, ScalarType.Float32);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = randint(3, 256, [2, 11], generator: new torch.Generator(5, CPU));
        var whole = model.Forward(ids);
        var saved = Mlp.ChunkTokens;
        try
        {
            Mlp.ChunkTokens = 4; // 22 rows → chunks of 4, 4, 4, 4, 4, 2
            var chunked = model.Forward(ids);
            Assert.Equal(whole.shape, chunked.shape);
            var diff = (whole - chunked).abs().max().item<float>();
            Assert.True(diff <= 1e-5f, $"chunked MLP changed logits by {diff}");
        }
        finally
        {
            Mlp.ChunkTokens = saved;
        }
    }
}
