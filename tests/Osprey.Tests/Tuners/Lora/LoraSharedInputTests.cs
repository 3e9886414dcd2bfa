using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Training;
using Osprey.Tuners.Lora;
using TorchSharp;
using static Osprey.Tests.Tuners.Lora.LoraTestModels;
using static TorchSharp.torch;

namespace Osprey.Tests.Tuners.Lora;

/// <summary>
/// One A-product per shared input (<see cref="LoraSharedInput"/>): q/k/v and gate/up adapters computing x [A₁; A₂; A₃]ᵀ
/// once give the logits, loss and every LoRA gradient of the per-module products (float32, within 1e-6) for plain LoRA,
/// rsLoRA with per-module ranks and DoRA; with dropout in training each module takes its own product (counted, and the
/// loss is bitwise the groups-off run's); and an adapter trained with the groups, saved, and loaded with them off gives
/// the logits of the base weights merged in this test with plain matmuls from the saved tensors by PEFT's formula
/// W + (alpha / r)·B·A. The stacked projections (which replace the groups where the base is dense) are off here.
/// </summary>
public sealed class LoraSharedInputTests
{
    /// <summary>
    /// Attaches LoRA with the stacked projections off (<see cref="LoraStackedProjection"/>, tested on its own): the parts
    /// then run one by one, which is the path these groups serve.
    /// </summary>
    static void Attach(CausalLM model, LoraOptions options, long seed = 0)
    {
        model.AttachLora(options, seed);
        foreach (var s in model.FindState<LoraState>()!.StackedProjections) s.Enabled = false;
    }

    static List<LoraSharedInput> Groups(CausalLM model) => model.FindState<LoraState>()!.SharedInputs;

    static void SetGroups(CausalLM model, bool enabled)
    {
        foreach (var g in Groups(model)) g.Enabled = enabled;
    }

    static (long Stacked, long Separate) Counts(CausalLM model) =>
        (Groups(model).Sum(g => g.StackedProducts), Groups(model).Sum(g => g.SeparateProducts));

    static (Tensor Ids, Tensor Labels) Batch(CausalLM model)
    {
        var ids = randint(3, model.Spec.VocabSize, [2, 11], generator: new torch.Generator(7, CPU));
        return (ids, ids.clone());
    }

    public static TheoryData<string, string, bool> Cases() => new()
    {
        { "qwen2", "lora", false },   // grouped KV heads, q/k/v bias
        { "llama", "lora", false },
        { "qwen3", "lora", false },   // q/k norms after the projections
        { "qwen2", "rslora-ranks", false }, // alpha/√r, q and v of rank 2, the rest rank 4: the stacked A has rows 2 + 4 + 2
        { "qwen2", "dora", false },
        { "qwen2", "lora", true },
        { "qwen2", "rslora-ranks", true },
        { "qwen2", "dora", true },
    };

    static LoraOptions Options(string kind) => kind switch
    {
        "rslora-ranks" => new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, UseRslora = true, RankPattern = new Dictionary<string, int> { ["q_proj"] = 2, ["v_proj"] = 2 } },
        "dora" => new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, UseDora = true },
        _ => new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Shared_and_separate_products_give_the_same_logits_and_gradients(string family, string kind, bool float64)
    {
        using var model = Load(family, float64 ? ScalarType.Float64 : ScalarType.Float32);
        Attach(model, Options(kind), 3);
        Perturb(model);
        // Every stacked projection with adapters forms a group (attention q/k/v and MLP gate/up per layer).
        Assert.Equal(2 * model.Spec.Layers.Count, Groups(model).Count);
        if (kind == "rslora-ranks") Assert.Equal([2, 4, 2], Groups(model)[0].Members.Select(m => m.Settings.Rank));
        CompareSharedWithSeparate(model, float64 ? 1e-12 : 1e-6, float64 ? 1e-12 : 5e-6);
    }

    [Fact]
    public void A_quantized_base_shares_the_adapters_product_too()
    {
        // QLoRA: the base is 4-bit (bitsandbytes NF4, dequantized per call); A and B are float32 and still stack.
        var load = new ModelLoadOptions
        {
            Device = DeviceSpec.Cpu, DType = "float32", Notice = TextWriter.Null,
            Quantization = new BnbLoader(new QuantizationOptions { QuantMethod = "bnb", QuantBits = 4 }),
        };
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", "qwen2"), load);
        Assert.True(model.QuantizedLayerCount > 0);
        Attach(model, new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0 }, 3);
        Perturb(model);
        Assert.Equal(2 * model.Spec.Layers.Count, Groups(model).Count);
        CompareSharedWithSeparate(model, 1e-6, 5e-6);
    }

    /// <summary>
    /// Loss, every LoRA gradient (one training forward/backward) and the evaluation logits with the groups on and off,
    /// checking through the counters that each run took the path it names.
    /// </summary>
    static void CompareSharedWithSeparate(CausalLM model, double logitTolerance, double gradientTolerance)
    {
        var (ids, labels) = Batch(model);
        using var __ = ids;
        using var ___ = labels;
        PathResults Run(bool shared)
        {
            SetGroups(model, shared);
            return TrainAndEvaluate(model, ids, labels, new TrainForwardOptions());
        }

        var before = Counts(model);
        var shared = Run(shared: true);
        var afterShared = Counts(model);
        Assert.Equal(before.Separate, afterShared.Separate); // no member computed its own product
        Assert.True(afterShared.Stacked >= before.Stacked + 2 * Groups(model).Count, "the shared products did not run (forward, backward and eval)");
        var separate = Run(shared: false);
        Assert.Equal(afterShared.Stacked, Counts(model).Stacked);
        Assert.True(Counts(model).Separate > afterShared.Separate);

        AssertSameResults(shared, separate, logitTolerance, gradientTolerance);
    }

    [Fact]
    public void Dropout_in_training_takes_each_modules_own_product()
    {
        using var model = Load("qwen2");
        Attach(model, new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.1 }, 3);
        Perturb(model);
        var (ids, labels) = Batch(model);
        using var __ = ids;
        using var ___ = labels;
        model.train();
        var options = new TrainForwardOptions { DropoutSeed = 5 };
        double Loss()
        {
            using var r = model.ForwardBackward(ids, labels, null, options);
            return r.LossSum.ToDouble();
        }
        var on = Loss();
        var counts = Counts(model);
        Assert.Equal(0, counts.Stacked);
        Assert.Equal(Groups(model).Sum(g => g.Members.Count), counts.Separate); // every member, once (forward)
        SetGroups(model, false);
        Assert.Equal(on, Loss()); // the groups-off path itself, bit for bit
        // Without dropout (evaluation) the product is exact again and shared.
        SetGroups(model, true);
        model.eval();
        using (no_grad())
            model.Forward(ids).Dispose();
        Assert.Equal(Groups(model).Count, Counts(model).Stacked);
    }

    [Fact]
    public void An_adapter_trained_shared_and_loaded_separate_gives_the_merged_weights_logits()
    {
        var options = new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0 };
        using var dir = new TempDirectory();
        var (ids, labels) = (tensor(new long[] { 5, 17, 42, 99, 7, 30, 64, 12, 3 }, [1, 9]), tensor(new long[] { 5, 17, 42, 99, 7, 30, 64, 12, 3 }, [1, 9]));
        Tensor trained;
        using (var model = Load("qwen2"))
        {
            Attach(model, options, 1);
            model.train();
            using var optimizer = new AdamW(0.9, 0.999, 1e-8);
            foreach (var (n, p) in model.LoraParameters()) optimizer.Add(n, p, 0.0);
            for (var step = 0; step < 3; step++)
            {
                using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions());
                optimizer.Step(1e-2);
                optimizer.ZeroGrad();
            }
            Assert.Equal(0, Counts(model).Separate);
            Assert.True(Counts(model).Stacked > 0);
            model.eval();
            using (no_grad()) trained = model.Forward(ids).detach().clone();
            PeftAdapter.Save(model, options, dir.Path, "base");
        }
        using var _ = trained;

        using var loaded = Load("qwen2");
        var (saved, _) = PeftAdapter.ReadConfig(dir.Path);
        Attach(loaded, saved);
        SetGroups(loaded, false);
        PeftAdapter.LoadInto(loaded, dir.Path);
        loaded.eval();
        using var separate = loaded.Forward(ids);
        Assert.Equal(0, Counts(loaded).Stacked);
        Assert.True(Counts(loaded).Separate > 0);
        Close(trained, separate, "shared-trained vs separate-loaded logits", 1e-6);

        // Reference: the base with W + (alpha / r)·B·A folded in from the saved file, by plain matmuls.
        using var reference = Load("qwen2");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, PeftAdapter.ConfigFile)))!;
        var scaling = config["lora_alpha"]!.GetValue<double>() / config["r"]!.GetValue<int>();
        var weights = reference.LinearLayers().ToDictionary(l => l.Path, l => l.Layer.Weight);
        using var file = SafetensorsFile.Open(Path.Combine(dir.Path, PeftAdapter.WeightsFile));
        var merged = 0;
        using (no_grad())
            foreach (var e in file.Entries.Where(e => e.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal)))
            {
                var module = e.Name["base_model.model.".Length..^".lora_A.weight".Length];
                using var a = file.ReadTensor(e.Name).to_type(ScalarType.Float64);
                using var b = file.ReadTensor(module.Insert(0, "base_model.model.") + ".lora_B.weight").to_type(ScalarType.Float64);
                var w = weights[module];
                w.copy_(w.to_type(ScalarType.Float64) + (b.matmul(a) * scaling));
                merged++;
            }
        Assert.Equal(7 * reference.Spec.Layers.Count, merged);
        reference.eval();
        using var expected = reference.Forward(ids);
        using var baseModel = Load("qwen2");
        using (var plain = baseModel.Forward(ids))
            Assert.True(MaxDiff(plain, trained) > 1e-3, "the trained adapter must change the logits");
        var toMerged = MaxDiff(separate, expected);
        Assert.True(toMerged <= 1e-5, $"separate-loaded vs merged by PEFT's formula: max |Δlogit| {toMerged:E3}");
    }
}
