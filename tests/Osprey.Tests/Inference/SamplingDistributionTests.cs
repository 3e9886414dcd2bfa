using Osprey.Inference;
using Osprey.Runtime;
using Osprey.Serving;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Inference;

/// <summary>The sampler draws from the distribution transformers' processors leave (20,000 draws per case).</summary>
public sealed class SamplingDistributionTests
{
    static double[] Frequencies(double[] probs, SamplingParams options, int draws = 20000)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var scope = NewDisposeScope();
        var row = tensor(probs.Select(p => (float)Math.Log(p)).ToArray()).unsqueeze(0);
        var logits = row.expand(draws, probs.Length).contiguous();
        using var rng = new torch.Generator(123, CPU);
        var picks = TokenSampler.Pick(logits, Enumerable.Repeat(options, draws).ToArray(), null, null, () => 1.0f - rand([draws, 1], generator: rng)).data<long>().ToArray();
        var counts = new double[probs.Length];
        foreach (var p in picks) counts[p]++;
        return counts.Select(c => c / draws).ToArray();
    }

    static void Close(double[] expected, double[] actual)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) < 0.015, $"token {i}: expected {expected[i]:F3}, sampled {actual[i]:F3}");
    }

    static readonly double[] P = [0.1, 0.2, 0.3, 0.4];

    [Fact]
    public void PlainSamplingFollowsTheSoftmax() =>
        Close(P, Frequencies(P, new SamplingParams { DoSample = true, Temperature = 1.0, TopK = 0 }));

    [Fact]
    public void TopKKeepsTheKMostLikely() =>
        Close([0, 0, 3 / 7.0, 4 / 7.0], Frequencies(P, new SamplingParams { DoSample = true, Temperature = 1.0, TopK = 2 }));

    [Fact]
    public void TopPDropsTheTailWhoseMassIsAtMostOneMinusP() =>
        // Ascending cumulative mass 0.1, 0.3, 0.6, 1.0: tokens with mass ≤ 0.5 go, as in transformers.
        Close([0, 0, 3 / 7.0, 4 / 7.0], Frequencies(P, new SamplingParams { DoSample = true, Temperature = 1.0, TopK = 0, TopP = 0.5 }));

    [Fact]
    public void TemperatureSharpens()
    {
        // p^(1/T) renormalised, T = 0.5.
        var sq = P.Select(p => p * p).ToArray();
        var expected = sq.Select(x => x / sq.Sum()).ToArray();
        Close(expected, Frequencies(P, new SamplingParams { DoSample = true, TopK = 0, Temperature = 0.5 }));
    }
}
