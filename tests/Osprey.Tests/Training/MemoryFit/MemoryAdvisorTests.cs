using Osprey.Tests.Cli.Commands;
using Osprey.Training;
using Osprey.Training.MemoryFit;

namespace Osprey.Tests.Training.MemoryFit;

/// <summary>The advisor's sentence for a given free-memory number (no GPU needed), and <c>osprey estimate</c>'s table.</summary>
public sealed class MemoryAdvisorTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private const long GiB = 1L << 30;

    private static readonly MemoryPlan Plain = new() { LoraRank = 8, MaxLength = 2048, BatchSize = 1, GradientCheckpointing = false };

    private static long Peak(Osprey.Models.DecoderSpec spec, MemoryPlan plan) => MemoryEstimate.Compute(spec, plan).Peak;

    [Fact]
    public void Fits_GivesNoSentence()
    {
        var spec = MemoryEstimateTests.Spec(_dir, MemoryEstimateTests.SevenB);
        Assert.Null(MemoryAdvisor.Advise(spec, Plain, Peak(spec, Plain)));
    }

    [Fact]
    public void TooLittle_NamesNeedFreeAndEachChangeThatFits()
    {
        var spec = MemoryEstimateTests.Spec(_dir, MemoryEstimateTests.SevenB);
        var plan = Plain with { GradientCheckpointing = true, BatchSize = 4 };
        var quant = Peak(spec, plan with { QuantBits = 4 });
        var one = Peak(spec, plan with { BatchSize = 1 });
        var free = Math.Max(quant, one) + (1L << 20); // both changes fit, the run as asked does not
        Assert.True(free < Peak(spec, plan));
        var expected = $"needs ≈{MemoryAdvisor.Format(Peak(spec, plan))} GiB, {free / (double)GiB:F1} GiB free: add --quant_method bnb --quant_bits 4 (≈{MemoryAdvisor.Format(quant)} GiB) or --per_device_train_batch_size 1 (≈{MemoryAdvisor.Format(one)} GiB), or pass --ignore_memory_check true to try anyway.";
        Assert.Equal(expected, MemoryAdvisor.Advise(spec, plan, free));
        // Room for the smaller of the two only: just that one is offered.
        var (smaller, other) = quant < one ? ("--quant_bits 4 (≈", "--per_device_train_batch_size") : ("--per_device_train_batch_size 1 (≈", "--quant_bits");
        var sentence = MemoryAdvisor.Advise(spec, plan, Math.Min(quant, one) + (1L << 20))!;
        Assert.Contains(smaller, sentence);
        Assert.DoesNotContain(other, sentence);
    }

    [Fact]
    public void QuantizingWithoutCheckpointing_KeepsTheOutputsTorchSharpMirrorsButNoDenseWeights()
    {
        // Without checkpointing a 4-bit base keeps, per layer, the output-sized tensor TorchSharp allocates per custom
        // autograd call: 28 layers × 2048 tokens × Σout (3584 + 512 + 512 + 3584 + 18944 + 18944 + 3584 = 49664) × 2 bytes;
        // no dense weight is kept, and one (the largest, 18944 × 3584 × 2) is built at a time during backward.
        var spec = MemoryEstimateTests.Spec(_dir, MemoryEstimateTests.SevenB);
        var plain = MemoryEstimate.Compute(spec, Plain);
        var quant = MemoryEstimate.Compute(spec, Plain with { QuantBits = 4 });
        Assert.Equal(28L * 2048 * 49664 * 2, quant.KeptActivations - plain.KeptActivations);
        Assert.Equal(18944L * 3584 * 2, quant.LayerRecompute - plain.LayerRecompute);
        Assert.True(quant.Peak < plain.Peak); // the packed weights save more than the mirrored outputs cost
    }

    [Fact]
    public void NoSingleChangeFits_OffersTheCombinationOrSaysNothingDoes()
    {
        var spec = MemoryEstimateTests.Spec(_dir, MemoryEstimateTests.SevenB);
        var big = Plain with { BatchSize = 8 };
        var both = Peak(spec, big with { QuantBits = 4, GradientCheckpointing = true, BatchSize = 1 });
        Assert.True(Peak(spec, big with { QuantBits = 4 }) > both + GiB && Peak(spec, big with { BatchSize = 1 }) > both + GiB);
        var combined = MemoryAdvisor.Advise(spec, big, both)!;
        Assert.EndsWith($"add --quant_method bnb --quant_bits 4 --gradient_checkpointing true --per_device_train_batch_size 1 (≈{MemoryAdvisor.Format(both)} GiB), or pass --ignore_memory_check true to try anyway.", combined);
        var none = MemoryAdvisor.Advise(spec, big, GiB)!;
        Assert.StartsWith($"needs ≈{MemoryAdvisor.Format(Peak(spec, big))} GiB, 1.0 GiB free, and even --quant_method bnb", none);
        Assert.EndsWith("lower --max_length or use a larger GPU (--ignore_memory_check true tries anyway).", none);
    }

    [Fact]
    public void FullTraining_SuggestsLora()
    {
        var spec = MemoryEstimateTests.Spec(_dir, MemoryEstimateTests.SevenB);
        var full = Plain with { TrainType = TrainType.Full, GradientCheckpointing = true };
        var lora = Peak(spec, full with { TrainType = TrainType.Lora });
        Assert.Contains($"add --train_type lora (≈{MemoryAdvisor.Format(lora)} GiB)", MemoryAdvisor.Advise(spec, full, lora));
    }

    [Fact]
    public void EstimateVerb_PrintsTheTableFromConfigAlone()
    {
        File.WriteAllText(_dir.File("config.json"), MemoryEstimateTests.SevenB); // no weights, no tokenizer
        var run = CliRun.Of("estimate", "--model", _dir.Path, "--max_length", "2048", "--quant_bits", "4", "--lora_rank", "8");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("trainable parameters 20,185,088", run.Stdout);
        Assert.Contains("4-bit + double quant", run.Stdout);
        foreach (var row in new[] { "weights", "adapters", "gradients", "optimizer state", "activations kept", "loss chunk", "CUDA context", "peak" })
            Assert.Contains(run.StdoutLines, l => l.StartsWith(row, StringComparison.Ordinal) && l.EndsWith(" GiB", StringComparison.Ordinal));
        // The CUDA context row is 0.5 GiB; the 4-bit weights of a 7B model are far below its bf16 size (≈14 GiB).
        Assert.Contains(run.StdoutLines, l => l.StartsWith("CUDA context", StringComparison.Ordinal) && l.Contains("0.50 GiB", StringComparison.Ordinal));
        var bad = CliRun.Of("estimate", "--model", _dir.Path, "--quant_bits", "3");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("--quant_bits 4 or 8", bad.Stderr);
    }
}
