using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training;
using Osprey.Tuners.Lora;
using Osprey.Tests.Cli.Commands;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// The training forward/backward pass: gradient checkpointing gives the gradients of the plain pass (dropout masks
/// included), the chunked loss equals transformers-style mean cross-entropy, packed rows give the loss of their samples
/// run alone, and the schedule matches transformers' formulas.
/// </summary>
public sealed class ForwardBackwardTests
{
    static CausalLM Load(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return CausalLM.Load(CliRun.Fixture(family), CPU, ScalarType.Float32);
    }

    static (Tensor Ids, Tensor Labels) Batch()
    {
        var g = new Random(7);
        var ids = Enumerable.Range(0, 2 * 24).Select(_ => (long)g.Next(4, 256)).ToArray();
        var labels = (long[])ids.Clone();
        for (var i = 0; i < 6; i++) labels[i] = -100;
        return (tensor(ids, [2, 24]), tensor(labels, [2, 24]));
    }

    static Dictionary<string, float[]> Grads(IEnumerable<(string Name, TorchSharp.Modules.Parameter Tensor)> ps) =>
        ps.Where(p => p.Tensor.grad is not null).ToDictionary(p => p.Name, p => p.Tensor.grad!.data<float>().ToArray());

    [Theory]
    [InlineData("qwen2", "lora")]
    [InlineData("gemma2", "lora")]
    [InlineData("llama", "full")]
    public void GradientCheckpointingGivesTheSameGradients(string family, string mode)
    {
        var (ids, labels) = Batch();
        Dictionary<string, float[]> Run(bool checkpointing)
        {
            using var model = Load(family);
            List<(string, TorchSharp.Modules.Parameter)> trainable;
            if (mode == "lora")
            {
                model.AttachLora(new LoraOptions { Rank = 4, Dropout = 0.2 }, seed: 3);
                using var g = new Generator(5, CPU); // tests run in parallel: never the process-wide generator
                foreach (var (_, p) in model.LoraParameters()) using (no_grad()) p.add_(rand(p.shape, generator: g) * 0.1);
                trainable = [.. model.LoraParameters()];
            }
            else
            {
                trainable = [.. model.BaseParameters()];
                foreach (var (_, p) in trainable) p.requires_grad_(true);
            }
            model.train();
            using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions { GradientCheckpointing = checkpointing, DropoutSeed = 11, LossChunkRows = 7 });
            return Grads(trainable);
        }
        var plain = Run(false);
        var recomputed = Run(true);
        Assert.NotEmpty(plain);
        Assert.Equal(plain.Keys.Order(), recomputed.Keys.Order());
        if (mode == "full") Assert.Contains("model.embed_tokens.weight", plain.Keys);
        foreach (var (name, g) in plain)
        {
            var diff = g.Zip(recomputed[name]).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(diff <= 1e-6, $"{name}: max |Δgrad| {diff}");
            Assert.Contains(g, v => v != 0);
        }
    }

    [Fact]
    public void SequenceObjectiveOfSummedLogProbsGivesTheTokenLossGradients()
    {
        var (ids, labels) = Batch();
        Dictionary<string, float[]> Run(bool sequence)
        {
            using var model = Load("qwen2");
            model.AttachLora(new LoraOptions { Rank = 4, Dropout = 0 }, seed: 3);
            using var g = new Generator(5, CPU);
            foreach (var (_, p) in model.LoraParameters()) using (no_grad()) p.add_(rand(p.shape, generator: g) * 0.1);
            var tokens = 2 * 23 - 5;
            using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions
            {
                LossChunkRows = 9,
                LossScale = sequence ? 1 : 1.0 / tokens,
                SequenceObjective = sequence ? (logps, counts) => logps.sum().neg() / tokens : null,
            });
            if (sequence)
            {
                Assert.Equal(new[] { 23f - 5, 23f }, r.RowCounts!.data<float>().ToArray());
                Assert.True(Math.Abs(r.LossSum.ToDouble() + r.RowLogProbs!.sum().ToDouble() / tokens) < 1e-5);
            }
            return Grads(model.LoraParameters());
        }
        var token = Run(false);
        var seq = Run(true);
        foreach (var (name, grad) in token)
            Assert.True(grad.Zip(seq[name]).Max(p => Math.Abs(p.First - p.Second)) < 1e-6, name);
    }

    [Fact]
    public void ChunkedLossEqualsMeanCrossEntropy()
    {
        using var model = Load("qwen3");
        var (ids, labels) = Batch();
        using var _ = no_grad();
        using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions { Backward = false, LossChunkRows = 5 });
        using var logits = model.Forward(ids);
        using var reference = CausalLM.Loss(logits, labels);
        Assert.Equal(2 * 23 - 5, r.Tokens);
        Assert.True(Math.Abs(r.LossSum.ToDouble() / r.Tokens - reference.ToDouble()) < 1e-5);
    }

    [Fact]
    public void PackedRowLossEqualsItsSamplesAlone()
    {
        using var model = Load("mistral");
        var a = Enumerable.Range(10, 9).Select(i => (long)i).ToArray();
        var b = Enumerable.Range(40, 6).Select(i => (long)i).ToArray();
        double Alone(long[] s)
        {
            using var r = model.ForwardBackward(tensor(s, [1, s.Length]), tensor(s, [1, s.Length]), null, new TrainForwardOptions { Backward = false });
            return r.LossSum.ToDouble();
        }
        var packedIds = a.Concat(b).ToArray();
        var packedLabels = a.Concat(b).ToArray();
        packedLabels[a.Length] = -100; // a sample's first token is predicted by nothing inside its own sample
        var positions = Enumerable.Range(0, a.Length).Concat(Enumerable.Range(0, b.Length)).Select(i => (long)i).ToArray();
        using var packed = model.ForwardBackward(tensor(packedIds, [1, packedIds.Length]), tensor(packedLabels, [1, packedIds.Length]),
            tensor(positions, [1, positions.Length]), new TrainForwardOptions { Backward = false });
        Assert.Equal(a.Length - 1 + b.Length - 1, packed.Tokens);
        Assert.True(Math.Abs(packed.LossSum.ToDouble() - (Alone(a) + Alone(b))) < 1e-4);
    }

    [Fact]
    public void ScheduleFollowsTransformersFormulas()
    {
        var cosine = new LearningRateSchedule(LrSchedulerType.Cosine, 1.0, 10, 110);
        Assert.Equal(0.0, cosine.RateAt(0));
        Assert.Equal(0.5, cosine.RateAt(5), 12);
        Assert.Equal(1.0, cosine.RateAt(10), 12);
        Assert.Equal(0.5, cosine.RateAt(60), 12);
        Assert.Equal(0.0, cosine.RateAt(110), 12);
        var linear = new LearningRateSchedule(LrSchedulerType.Linear, 2.0, 0, 100);
        Assert.Equal(2.0, linear.RateAt(0), 12);
        Assert.Equal(1.0, linear.RateAt(50), 12);
        Assert.Equal(1.0, new LearningRateSchedule(LrSchedulerType.Constant, 1.0, 5, 100).RateAt(0));
    }

    [Fact]
    public void BatchPlanVisitsEverySampleOncePerEpochInASeededOrder()
    {
        var samples = Enumerable.Range(0, 10).Select(i => new Osprey.Datasets.EncodedSample([i, i], [i, i])).ToList();
        var plan = new BatchPlan(samples, 3, 2, 42);
        Assert.Equal(2, plan.StepsPerEpoch); // 4 micro-batches of 3, 3, 3, 1
        var epoch0 = Enumerable.Range(0, 2).SelectMany(s => plan.MicroBatches(s)).SelectMany(m => m.InputIds.Where((_, i) => i % 2 == 0)).ToList();
        var epoch1 = Enumerable.Range(2, 2).SelectMany(s => plan.MicroBatches(s)).SelectMany(m => m.InputIds.Where((_, i) => i % 2 == 0)).ToList();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), epoch0.Order());
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), epoch1.Order());
        Assert.NotEqual(epoch0, epoch1);
        Assert.Equal(epoch1, Enumerable.Range(2, 2).SelectMany(s => new BatchPlan(samples, 3, 2, 42).MicroBatches(s)).SelectMany(m => m.InputIds.Where((_, i) => i % 2 == 0)));

        // The order is the documented function of (seed, epoch) alone — nothing process-specific such as string or
        // HashCode hashing, which .NET randomises per process and which would break resuming in a new process.
        var expected = Enumerable.Range(0, 10).ToArray();
        var rng = new Random(unchecked(42 * 1_000_003 + 1 * 7919 + 0x5f7d));
        for (var i = expected.Length - 1; i > 0; i--)
        {
            var j = rng.Next(i + 1);
            (expected[i], expected[j]) = (expected[j], expected[i]);
        }
        Assert.Equal(expected.Select(i => (long)i), epoch1);
    }
}
