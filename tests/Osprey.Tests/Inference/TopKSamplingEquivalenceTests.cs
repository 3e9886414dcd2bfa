using Osprey.Inference;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Inference;

/// <summary>
/// When every sampled row keeps a top-k, <see cref="TokenSampler"/> works among the kept tokens only. For fixed
/// uniforms it must pick the token that the published rules give, worked here in double precision over the whole
/// vocabulary:
/// - top-k keeps every logit at least the k-th largest (ties too, as transformers does);
/// - top-p drops a kept token when the more likely kept tokens already reach p (logits without ties there);
/// - inverse-CDF sampling walks the vocabulary in id order, picking the first token whose cumulative probability
///   reaches u·total.
/// </summary>
public sealed class TopKSamplingEquivalenceTests
{
    static int Expected(double[] logits, double temperature, int k, double p, double u)
    {
        var y = logits.Select(v => v / temperature).ToArray();
        var kth = y.OrderByDescending(v => v).ElementAt(k - 1);
        var keep = y.Select(v => v >= kth).ToArray();
        if (p < 1)
        {
            var kept = Enumerable.Range(0, y.Length).Where(i => keep[i]).ToArray();
            var max = kept.Max(i => y[i]);
            var z = kept.Sum(i => Math.Exp(y[i] - max));
            var drop = new HashSet<int>();
            foreach (var i in kept)
            {
                var more = kept.Where(j => y[j] > y[i]).Sum(j => Math.Exp(y[j] - max)) / z;
                if (more >= p) drop.Add(i);
            }
            foreach (var i in drop) keep[i] = false;
        }
        var m = Enumerable.Range(0, y.Length).Where(i => keep[i]).Max(i => y[i]);
        var weights = y.Select((v, i) => keep[i] ? Math.Exp(v - m) : 0).ToArray();
        var target = u * weights.Sum();
        double cumulative = 0;
        for (var i = 0; i < y.Length; i++)
        {
            cumulative += weights[i];
            if (weights[i] > 0 && cumulative >= target) return i;
        }
        return Array.FindLastIndex(keep, b => b);
    }

    [Fact]
    public void TokensAmongTheTopK_EqualTheWholeVocabularyRules_ForFixedUniforms()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var scope = NewDisposeScope();
        var g = new Random(11);
        const int Vocab = 2000;
        var rows = new (SamplingParams Sampling, double U)[]
        {
            (new SamplingParams { DoSample = true, Temperature = 0.9, TopK = 50, TopP = 0.9 }, 0.137),
            (new SamplingParams { DoSample = true, Temperature = 1.0, TopK = 5, TopP = 1.0 }, 0.611),
            (new SamplingParams { DoSample = true, Temperature = 0.7, TopK = 200, TopP = 0.5 }, 0.902),
            (new SamplingParams { DoSample = true, Temperature = 1.3, TopK = 1, TopP = 1.0 }, 0.444),
            (new SamplingParams { Temperature = 0 }, 0.5),
        };
        // Rows without top-p: logits on a coarse grid (steps of 1/16), so ties at the k-th value happen and must all
        // stay. Rows with top-p: distinct logits (which of two tied tokens top-p drops depends on a sort's order of
        // equal values, in transformers as here, so no rule can say).
        var logits = rows.Select(r => Enumerable.Range(0, Vocab).Select(_ => r.Sampling.TopP < 1 ? g.NextDouble() * 8 : Math.Round(g.NextDouble() * 8 * 16) / 16).ToArray()).ToArray();
        for (var trial = 0; trial < 20; trial++)
        {
            var us = rows.Select((r, i) => trial == 0 ? r.U : g.NextDouble()).ToArray();
            var input = tensor(logits.SelectMany(l => l.Select(v => (float)v)).ToArray(), [rows.Length, Vocab]);
            var picks = TokenSampler.Pick(input, rows.Select(r => r.Sampling).ToArray(), null, null,
                () => tensor(us.Select(u => (float)u).ToArray(), [rows.Length, 1])).data<long>().ToArray();
            for (var i = 0; i < rows.Length; i++)
            {
                var s = rows[i].Sampling;
                var expected = s.IsGreedy ? Array.IndexOf(logits[i], logits[i].Max()) : Expected(logits[i], s.Temperature, s.TopK, s.TopP, us[i]);
                Assert.True(expected == picks[i], $"trial {trial}, row {i} (k {s.TopK}, p {s.TopP}, u {us[i]:F4}): picked {picks[i]}, the rules give {expected}");
            }
        }
        // The coarse grid really made ties at the k-th value of rows 1 and 3 (more than k tokens kept).
        Assert.True(logits[1].Count(v => v >= logits[1].OrderByDescending(x => x).ElementAt(4)) > 5);
        Assert.True(logits[3].Count(v => v >= logits[3].Max()) > 1);
    }
}
