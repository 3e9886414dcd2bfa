using Osprey.Datasets;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// Packed training rows (<see cref="SequencePacker"/> + <see cref="CausalLM.ForwardPacked"/>) against the
/// same samples run one at a time: each sample's logits inside a pack within 1e-4 and the token-weighted
/// loss within 1e-5 (float32), for every parity fixture family — including Gemma 2's soft-capped eager
/// attention and the sliding-window layers of Gemma 2/3 and Mistral, whose windows are shorter than the samples.
/// </summary>
public sealed class PackedAttentionTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in ParityCase.Folders()) data.Add(dir);
        return data;
    }

    /// <summary>Samples with random ids (avoiding 0) and a prompt prefix labelled -100.</summary>
    static List<(int[] InputIds, int[] Labels)> Samples(int vocab, int seed)
    {
        var rng = new Random(seed);
        var lengths = new[] { 9, 3, 14, 6, 1, 11, 7, 2, 12, 5, 8, 4 };
        return lengths.Select(n =>
        {
            var ids = Enumerable.Range(0, n).Select(_ => rng.Next(1, vocab)).ToArray();
            var prompt = n / 3;
            return (ids, ids.Select((x, j) => j < prompt ? -100 : x).ToArray());
        }).ToList();
    }

    static Tensor Row(IEnumerable<int> values) => tensor(values.Select(v => (long)v).ToArray(), dtype: ScalarType.Int64).unsqueeze(0);

    /// <summary>Sum of the shifted per-token cross-entropies and the number of loss-carrying tokens.</summary>
    static (double Sum, long Count) LossSum(Tensor logits, Tensor labels)
    {
        long t = logits.shape[1], v = logits.shape[2];
        var shifted = logits.narrow(1, 0, t - 1).to_type(ScalarType.Float64).reshape(-1, v);
        var targets = labels.narrow(1, 1, t - 1).reshape(-1);
        var sum = nn.functional.cross_entropy(shifted, targets, ignore_index: -100, reduction: nn.Reduction.Sum).item<double>();
        return (sum, targets.ne(-100).sum().item<long>());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PackedLogitsAndLossEqualUnpacked(string dir)
    {
        var c = ParityCase.Load(dir);
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(c.Directory, CPU, ScalarType.Float32);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var samples = Samples((int)model.Spec.VocabSize, 7);
        var packs = SequencePacker.Pack(samples, 24);
        Assert.True(packs.Count < samples.Count && packs.Count(p => p.SampleLengths.Length >= 3) >= 2, "the test needs packs holding several samples");

        // Unpacked: each sample alone, default positions, no mask.
        var alone = new Tensor[samples.Count];
        double refSum = 0;
        long refCount = 0;
        for (int i = 0; i < samples.Count; i++)
        {
            alone[i] = model.Forward(Row(samples[i].InputIds));
            if (samples[i].InputIds.Length < 2) continue;
            var (s, n) = LossSum(alone[i], Row(samples[i].Labels));
            refSum += s;
            refCount += n;
        }
        var refLoss = refSum / refCount;

        // Packed: all packs in one right-padded batch.
        var batch = SequencePacker.Collate(packs, padTokenId: 0);
        var ids = tensor(batch.InputIds, dtype: ScalarType.Int64).view(batch.Rows, batch.Columns);
        var labels = tensor(batch.Labels, dtype: ScalarType.Int64).view(batch.Rows, batch.Columns);
        var positions = tensor(batch.PositionIds, dtype: ScalarType.Int64).view(batch.Rows, batch.Columns);
        var logits = model.ForwardPacked(ids, positions);

        double maxDiff = 0;
        for (int r = 0; r < packs.Count; r++)
        {
            var cu = packs[r].CumulativeLengths();
            for (int m = 0; m < packs[r].SampleIndices.Length; m++)
            {
                var inPack = logits.narrow(0, r, 1).narrow(1, cu[m], cu[m + 1] - cu[m]);
                maxDiff = Math.Max(maxDiff, (inPack - alone[packs[r].SampleIndices[m]]).abs().max().item<float>());
            }
        }
        Assert.True(maxDiff <= 1e-4, $"{c.Name}: max |Δlogit| packed vs alone = {maxDiff:E3} (limit 1e-4)");

        var (packedSum, packedCount) = LossSum(logits, labels);
        Assert.Equal(refCount, packedCount);
        var packedLoss = CausalLM.Loss(logits, labels).item<float>(); // the training loss, token-weighted mean
        Assert.True(Math.Abs(packedLoss - refLoss) <= 1e-5, $"{c.Name}: packed loss {packedLoss} vs unpacked {refLoss}");
        Assert.True(Math.Abs(packedSum / packedCount - refLoss) <= 1e-5, $"{c.Name}: packed loss (float64) {packedSum / packedCount} vs {refLoss}");
        Console.WriteLine($"{c.Name}: {packs.Count} packs, max |Δlogit| {maxDiff:E2}, loss {packedLoss:F7} vs {refLoss:F7} (Δ {Math.Abs(packedLoss - refLoss):E2})");
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("gemma2")]
    public void PackedGradientsEqualUnpacked(string family)
    {
        // Training: the gradient of the packed token-weighted loss equals that of the unpacked samples'
        // summed losses divided by their token count.
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", family), CPU, ScalarType.Float32);
        using var scope = NewDisposeScope();
        var samples = Samples((int)model.Spec.VocabSize, 11);
        var packs = SequencePacker.Pack(samples, 24);
        var parameters = model.named_parameters().ToList();
        foreach (var (_, p) in parameters) p.requires_grad_(true);

        Dictionary<string, Tensor> Grads()
        {
            var g = parameters.ToDictionary(p => p.name, p => p.parameter.grad!.clone());
            foreach (var (_, p) in parameters) p.grad = null;
            return g;
        }

        long count = 0;
        Tensor total = zeros(1);
        foreach (var (sampleIds, sampleLabels) in samples)
        {
            if (sampleIds.Length < 2) continue;
            var logits = model.Forward(Row(sampleIds));
            long t = logits.shape[1];
            var targets = Row(sampleLabels).narrow(1, 1, t - 1).reshape(-1);
            total = total + nn.functional.cross_entropy(logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]), targets, ignore_index: -100, reduction: nn.Reduction.Sum);
            count += targets.ne(-100).sum().item<long>();
        }
        (total / count).backward();
        var reference = Grads();

        var batch = SequencePacker.Collate(packs, padTokenId: 0);
        var packed = model.ForwardPacked(
            tensor(batch.InputIds, dtype: ScalarType.Int64).view(batch.Rows, batch.Columns),
            tensor(batch.PositionIds, dtype: ScalarType.Int64).view(batch.Rows, batch.Columns));
        CausalLM.Loss(packed, tensor(batch.Labels, dtype: ScalarType.Int64).view(batch.Rows, batch.Columns)).backward();
        var got = Grads();

        double worst = 0;
        foreach (var (name, g) in reference)
        {
            var scale = Math.Max(1e-3, g.abs().max().item<float>());
            worst = Math.Max(worst, (got[name] - g).abs().max().item<float>() / scale);
        }
        Assert.True(worst <= 1e-4, $"{family}: worst relative gradient difference {worst:E3}");
        Console.WriteLine($"{family}: worst relative gradient difference packed vs unpacked {worst:E2}");
    }

    [Fact]
    public void WithoutTheMaskSamplesWouldLeak()
    {
        // Guards the test above: plain causal attention over the same packed row differs from running alone.
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", "llama"), CPU, ScalarType.Float32);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var samples = Samples((int)model.Spec.VocabSize, 3).Take(2).ToList();
        var pack = SequencePacker.Pack(samples, 64).Single();
        var ids = Row(pack.InputIds);
        var positions = Row(pack.PositionIds);
        var second = samples[pack.SampleIndices[1]].InputIds;
        var start = pack.SampleLengths[0];
        var aloneLogits = model.Forward(Row(second));
        var packed = model.ForwardPacked(ids, positions).narrow(1, start, second.Length);
        var leaky = model.Forward(ids, positions: positions).narrow(1, start, second.Length);
        Assert.True((packed - aloneLogits).abs().max().item<float>() <= 1e-4f);
        Assert.True((leaky - aloneLogits).abs().max().item<float>() > 1e-2f);
    }

    [Fact]
    public void SegmentIdsStartAtPositionZero()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var scope = NewDisposeScope();
        var seg = CausalLM.SegmentIds(tensor(new long[] { 0, 1, 2, 0, 0, 1, 3, 4, 0, 1 }).view(2, 5));
        Assert.Equal(new long[] { 1, 1, 1, 2, 3, 0, 0, 0, 1, 1 }, seg.data<long>().ToArray());
    }
}
