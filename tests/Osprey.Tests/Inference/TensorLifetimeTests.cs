using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Inference;

/// <summary>Generation must not leave tensors behind, and must not accumulate them per step.</summary>
public sealed class TensorLifetimeTests
{
    [Theory]
    [InlineData("llama3")]
    [InlineData("gemma2")]
    public void GenerationLeavesNoLiveTensors(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", family), CPU, ScalarType.Float32);
        var generator = new TokenGenerator(model);
        var options = SamplingParams.FromModel(model.Spec, null) with { StopTokenIds = [], MaxTokens = 4 };
        IReadOnlyList<IReadOnlyList<int>> prompts = [[5, 6, 7], [8, 9]];
        generator.Generate(prompts, options); // first call: lazily created state, if any

        long Live() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var before = Live();
        using (var probe = zeros(1)) Assert.Equal(before + 1, Live()); // the counter sees a leaked tensor
        generator.Generate(prompts, options);
        var afterShort = Live();
        // Live tensors seen from inside the loop must not grow with the step count.
        var during = new Dictionary<int, long>();
        generator.Generate(prompts, options with { MaxTokens = 40, RepetitionPenalty = 1.3, DoSample = true, TopK = 20, TopP = 0.9, Seed = 1 },
            e => { if (e.Sequence == 0) during[e.Index] = Live(); });
        var afterLong = Live();
        Assert.Equal(40, during.Count);
        Assert.Equal(during[2], during[39]);
        Assert.Equal(before, afterShort);
        Assert.Equal(before, afterLong);
    }

    [Fact]
    public void ForwardInsideAScopeFreesItsIntermediates()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", "qwen2"), CPU, ScalarType.Float32);
        long Live() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var before = Live();
        using (NewDisposeScope())
        using (no_grad())
        {
            var logits = model.Forward(tensor(new long[] { 5, 6, 7, 8 }, [1, 4]));
            Assert.Equal(new long[] { 1, 4, 256 }, logits.shape);
        }
        Assert.Equal(before, Live());
    }
}
