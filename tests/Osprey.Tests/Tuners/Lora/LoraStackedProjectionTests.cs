using Osprey.Models;
using Osprey.Training;
using Osprey.Tuners.Lora;
using TorchSharp;
using static Osprey.Tests.Tuners.Lora.LoraTestModels;
using static TorchSharp.torch;

namespace Osprey.Tests.Tuners.Lora;

/// <summary>
/// LoRA applied to a stacked projection's one base output (<see cref="LoraStackedProjection"/>: y = x W_sᵀ + b +
/// s·(x A_sᵀ) B_dᵀ with B_d block-diagonal) against the same adapters run module by module, each with its own base
/// product and its own x Aᵀ (the stacked projections and the shared-input groups both off): logits, loss and every
/// LoRA gradient, for plain LoRA, rsLoRA with per-module ranks (scalings that differ within a projection), adapters on
/// some parts only (a zero-width block), and dropout in training (the same masks both ways). DoRA and switched-off
/// adapters are checked to take the paths they name.
/// </summary>
public sealed class LoraStackedProjectionTests
{
    static List<LoraStackedProjection> Stacked(CausalLM model) => model.FindState<LoraState>()!.StackedProjections;

    static long Calls(CausalLM model) => Stacked(model).Sum(s => s.Calls);

    /// <summary>Stacked projections on (the default), or off with the shared-input groups off too: every module by itself.</summary>
    static void SetStacked(CausalLM model, bool on)
    {
        foreach (var s in Stacked(model)) s.Enabled = on;
        foreach (var g in model.FindState<LoraState>()!.SharedInputs) g.Enabled = on;
    }

    public static TheoryData<string, string, bool> Cases() => new()
    {
        { "qwen2", "lora", false },   // grouped KV heads, q/k/v bias
        { "llama", "lora", false },
        { "qwen3", "lora", false },   // q/k norms after the projections
        { "qwen2", "rslora-ranks", false },
        { "qwen2", "q-v-only", false },
        { "qwen2", "dropout", false },
        { "qwen2", "lora", true },
        { "qwen2", "rslora-ranks", true },
        { "qwen2", "q-v-only", true },
        { "qwen2", "dropout", true },
    };

    static LoraOptions Options(string kind) => kind switch
    {
        // alpha/√r: q and v of rank 2 scale by 8/√2, k by 8/√4, so one projection holds two scalings.
        "rslora-ranks" => new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, UseRslora = true, RankPattern = new Dictionary<string, int> { ["q_proj"] = 2, ["v_proj"] = 2 } },
        // k_proj has no adapter (a zero-width block in B_d); gate/up have none, so the MLP stays unadapted.
        "q-v-only" => new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = ["q_proj", "v_proj"] },
        "dropout" => new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.1 },
        _ => new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Stacked_and_module_by_module_give_the_same_logits_loss_and_gradients(string family, string kind, bool float64)
    {
        using var model = Load(family, float64 ? ScalarType.Float64 : ScalarType.Float32);
        model.AttachLora(Options(kind), seed: 3);
        Perturb(model);
        var layers = model.Spec.Layers.Count;
        Assert.Equal(kind == "q-v-only" ? layers : 2 * layers, Stacked(model).Count);
        var ids = randint(3, model.Spec.VocabSize, [2, 11], generator: new torch.Generator(7, CPU));
        using var __ = ids;
        PathResults Run(bool stacked)
        {
            SetStacked(model, stacked);
            return TrainAndEvaluate(model, ids, ids, new TrainForwardOptions { DropoutSeed = 5 });
        }

        var stacked = Run(stacked: true);
        var calls = Calls(model);
        Assert.True(calls >= 2 * Stacked(model).Count, $"the stacked projections ran {calls} times; training and evaluation should each run every one");
        var separate = Run(stacked: false);
        Assert.Equal(calls, Calls(model)); // off means off

        var (logitTolerance, gradientTolerance) = float64 ? (1e-12, 1e-12) : (1e-6, 5e-6);
        AssertSameResults(stacked, separate, logitTolerance, gradientTolerance);
    }

    [Fact]
    public void Dropout_draws_the_same_masks_as_module_by_module()
    {
        // Different dropout seeds must change the loss (else the dropout case above compares undropped runs).
        using var model = Load("qwen2", ScalarType.Float64);
        model.AttachLora(Options("dropout"), seed: 3);
        Perturb(model);
        var ids = randint(3, model.Spec.VocabSize, [2, 11], generator: new torch.Generator(7, CPU));
        using var __ = ids;
        model.train();
        double Loss(long seed)
        {
            using var r = model.ForwardBackward(ids, ids, null, new TrainForwardOptions { DropoutSeed = seed });
            return r.LossSum.ToDouble();
        }
        var five = Loss(5);
        Assert.True(Math.Abs(five - Loss(6)) > 1e-9, "another dropout seed gave the same loss");
        SetStacked(model, false);
        Assert.True(Math.Abs(five - Loss(5)) <= 1e-12 * Math.Abs(five), "module by module with the same seed gave another loss");
    }

    [Fact]
    public void DoRA_runs_part_by_part_and_switched_off_adapters_give_the_base_output()
    {
        using (var dora = Load("qwen2"))
        {
            dora.AttachLora(new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, UseDora = true }, seed: 3);
            dora.eval();
            using (no_grad()) dora.Forward(tensor(new long[] { 5, 17, 42 }, [1, 3])).Dispose();
            Assert.Equal(0, Calls(dora));
        }

        using var model = Load("qwen2");
        using var baseModel = Load("qwen2");
        model.AttachLora(Options("lora"), seed: 3);
        Perturb(model);
        var ids = tensor(new long[] { 5, 17, 42, 99, 7 }, [1, 5]);
        model.eval();
        baseModel.eval();
        using var _ = no_grad();
        using var plain = baseModel.Forward(ids);
        using (var adapted = model.Forward(ids))
            Assert.True((adapted - plain).abs().max().ToDouble() > 1e-3, "the perturbed adapters must change the logits");
        model.SetAdaptersEnabled(false);
        using var off = model.Forward(ids);
        Assert.Equal(0.0, (off - plain).abs().max().ToDouble());
    }
}
