using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Training;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Tuners.Lora;

/// <summary>
/// The merged copy GRPO/PPO rollouts read (<see cref="LoraMergedCopy"/>): in use, the model's logits equal those of the
/// unmerged adapters (float32, ≤1e-5), for the demo model (q/k/v and gate/up stacked by Osprey) and the Phi-3 fixture
/// (stacked in the checkpoint); the forward pass really reads the copy (adapters changed after the last refresh do not
/// show until the next one); and DoRA is refused.
/// </summary>
public sealed class LoraMergedCopyTests
{
    [Theory]
    [InlineData("demo")]
    [InlineData("phi3")]
    public void The_copy_gives_the_adapters_logits_and_is_what_the_forward_reads(string fixture)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = fixture == "demo" ? TestDemoModel.Folder : Path.Combine(TestPaths.Fixtures, "parity", fixture);
        using var model = CausalLM.Load(folder, CPU, ScalarType.Float32);
        model.AttachLora(new LoraOptions { Rank = 4, Alpha = 8 }, seed: 5);
        var lora = model.LoraParameters();
        using (no_grad())
        {
            // B starts at zero (the adapter changes nothing): give every adapter a real delta.
            var g = new Generator(11, CPU);
            foreach (var (name, p) in lora.Where(p => p.Name.EndsWith("lora_B.weight", StringComparison.Ordinal)))
                p.copy_(randn(p.shape, generator: g) * 0.05);
        }
        model.eval();
        using var ids = tensor(new long[] { 1, 17, 42, 99, 5, 7, 30 }.Select(i => i % model.Spec.VocabSize).ToArray(), [1, 7]);
        using var unmerged = model.Forward(ids).detach().clone();

        using var copy = LoraMergedCopy.TryCreate(model, out var reason);
        Assert.True(copy is not null, reason);
        Assert.True(copy!.Bytes > 0);
        using (copy.Use())
        {
            using var merged = model.Forward(ids);
            Assert.True((merged - unmerged).abs().max().item<float>() <= 1e-5f, "the merged copy's logits differ from the adapters'");

            // Change the adapters: the copy is not refreshed yet, so the logits stay; after Refresh they move.
            using (no_grad())
                foreach (var (_, p) in lora.Where(p => p.Name.EndsWith("lora_B.weight", StringComparison.Ordinal)))
                    p.mul_(3.0);
            using var stale = model.Forward(ids);
            Assert.True((stale - unmerged).abs().max().item<float>() <= 1e-5f, "the forward pass did not read the merged copy");
            copy.Refresh();
            using var refreshed = model.Forward(ids);
            Assert.True((refreshed - unmerged).abs().max().item<float>() > 1e-3f);
        }
        // Out of use: the adapters themselves again, which the refreshed copy matches.
        using var adapters = model.Forward(ids);
        using (copy.Use())
        using (var again = model.Forward(ids))
            Assert.True((again - adapters).abs().max().item<float>() <= 1e-5f);
    }

    [Fact]
    public void Dora_is_left_unmerged()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(TestDemoModel.Folder, CPU, ScalarType.Float32);
        model.AttachLora(new LoraOptions { Rank = 4, Alpha = 8, UseDora = true }, seed: 5);
        Assert.Null(LoraMergedCopy.TryCreate(model, out var reason));
        Assert.Contains("DoRA", reason);
    }
}
