using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Tuners.Lora;

/// <summary>What the tests comparing two LoRA paths share: the parity fixtures, adapters given a real delta, a scaled tolerance.</summary>
internal static class LoraTestModels
{
    /// <summary>A parity fixture (tests/fixtures/parity/FAMILY) on the CPU in <paramref name="dtype"/>.</summary>
    public static CausalLM Load(string family, ScalarType dtype = ScalarType.Float32)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", family), CPU, dtype);
    }

    /// <summary>B starts at zero (no gradient reaches A then): give every adapter a real delta, and DoRA magnitudes a tilt.</summary>
    public static void Perturb(CausalLM model)
    {
        using var _ = no_grad();
        var g = new torch.Generator(11, CPU);
        foreach (var (name, p) in model.LoraParameters())
            if (name.EndsWith("lora_B.weight", StringComparison.Ordinal)) p.copy_(randn(p.shape, generator: g) * 0.05);
            else if (name.EndsWith("lora_magnitude_vector", StringComparison.Ordinal)) p.mul_(1.0 + (rand(p.shape, generator: g) * 0.1));
    }

    /// <summary>The largest |a − b|.</summary>
    public static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().ToDouble();

    /// <summary>
    /// Within <paramref name="tolerance"/> times the reference's largest magnitude (at least 1). Two paths that sum in
    /// another order (stacked products, other BLAS blockings) differ in their last bits and the layers carry that on: in
    /// float32 the tests allow 1e-6 of the largest logit and 5e-6 of the largest gradient; in float64 1e-12, which only
    /// the same mathematics passes.
    /// </summary>
    public static void Close(Tensor actual, Tensor expected, string what, double tolerance)
    {
        var scale = Math.Max(1.0, expected.abs().max().ToDouble());
        var d = MaxDiff(actual, expected);
        Assert.True(d <= tolerance * scale, $"{what}: max |Δ| {d:E3} (largest |value| {scale:G4}, allowed {tolerance:E1} of it)");
    }

    /// <summary>One path's results: the loss of a training forward/backward, every LoRA gradient, the evaluation logits.</summary>
    public sealed record PathResults(double Loss, Dictionary<string, Tensor> Grads, Tensor Logits);

    /// <summary>One training forward/backward of <paramref name="ids"/> (gradients zeroed first) and one evaluation forward.</summary>
    public static PathResults TrainAndEvaluate(CausalLM model, Tensor ids, Tensor labels, TrainForwardOptions options)
    {
        var lora = model.LoraParameters();
        model.train();
        foreach (var (_, p) in lora) p.grad?.zero_();
        using var result = model.ForwardBackward(ids, labels, null, options);
        var grads = lora.ToDictionary(p => p.Name, p => p.Tensor.grad!.detach().clone());
        model.eval();
        using var _ = no_grad();
        return new PathResults(result.LossSum.ToDouble(), grads, model.Forward(ids));
    }

    /// <summary>Loss and logits within <paramref name="logitTolerance"/>, every gradient (none zero) within <paramref name="gradientTolerance"/>.</summary>
    public static void AssertSameResults(PathResults actual, PathResults expected, double logitTolerance, double gradientTolerance)
    {
        Assert.True(Math.Abs(actual.Loss - expected.Loss) <= logitTolerance * Math.Max(1, Math.Abs(expected.Loss)), $"loss {actual.Loss} vs {expected.Loss}");
        Close(actual.Logits, expected.Logits, "logits", logitTolerance);
        Assert.Equal(expected.Grads.Count, actual.Grads.Count);
        foreach (var (name, g) in expected.Grads)
        {
            Assert.True(g.abs().max().ToDouble() > 0, $"{name}: zero gradient, the comparison would prove nothing");
            Close(actual.Grads[name], g, name, gradientTolerance);
        }
    }
}
