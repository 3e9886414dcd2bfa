using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Tuners.Lora;

/// <summary>
/// Several PEFT adapters (tests/fixtures/peft) served unmerged in one batch, each row with its own adapter or the base:
/// every row's logits equal that row run alone through a fresh model with the adapter attached the training way
/// (<see cref="CausalLM.AttachLora"/> + <see cref="PeftAdapter.LoadInto"/>), with and without a KV cache; all-base
/// rows are bitwise the base model; unservable adapters are refused with a sentence naming the folder. In the
/// process-wide collection because one case changes the MLP's chunking settings.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class MultiLoraServingTests
{
    // Against the attached adapter run on the same batch the served rows are bitwise equal on the CPU (measured 0);
    // 1e-6 leaves room for BLAS differences. Against the row run alone the attached path itself differs from its own
    // batched result by up to 8.9e-5 (phi3; logits O(10), the fixture adapters scaled up), batch-size-dependent BLAS
    // blocking amplified by the adapters, so that comparison allows 1e-4.
    const double SameBatchTolerance = 1e-6;
    const double AloneTolerance = 1e-4;

    static string Peft(string name) => Path.Combine(TestPaths.Fixtures, "peft", name);

    static CausalLM LoadBase(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", family), CPU, ScalarType.Float32);
    }

    /// <summary>A fresh base model with <paramref name="adapter"/> attached and loaded (null: the bare base).</summary>
    static CausalLM Reference(string family, string? adapter)
    {
        var model = LoadBase(family);
        if (adapter is not null)
        {
            var (options, _) = PeftAdapter.ReadConfig(Peft(adapter));
            model.AttachLora(options);
            // Served rows take each module's own x·Aᵀ after each part's own base product; the attached default runs
            // q/k/v and gate/up as one stacked product with the adapters applied to it (LoraStackedProjectionTests), and
            // without that stacks their A's into one product (LoraSharedInputTests). Both change the summation order,
            // which would break the bitwise comparison, so both are off here.
            foreach (var group in model.FindState<LoraState>()!.SharedInputs) group.Enabled = false;
            foreach (var stacked in model.FindState<LoraState>()!.StackedProjections) stacked.Enabled = false;
            PeftAdapter.LoadInto(model, Peft(adapter));
        }
        model.eval();
        return model;
    }

    static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().ToDouble();

    static Tensor Ids(long rows, long t, ulong seed) => randint(3, 256, [rows, t], generator: new torch.Generator(seed, CPU));

    /// <summary>Serves <paramref name="adapters"/> on one model and checks a mixed batch row by row against the references.</summary>
    static void CheckMixedBatch(string family, string[] adapters, int[] rows, long t = 9, double sameBatchTolerance = SameBatchTolerance)
    {
        using var served = LoadBase(family);
        for (var i = 0; i < adapters.Length; i++) Assert.Equal(i + 1, served.AddServingAdapter(adapters[i], Peft(adapters[i])));
        Assert.Equal(adapters, served.ServingAdapterNames);
        served.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = Ids(rows.Length, t, 11);
        served.SetRowAdapters(rows);
        var logits = served.Forward(ids);
        var references = rows.Distinct().ToDictionary(k => k, k => Reference(family, k == 0 ? null : adapters[k - 1]));
        try
        {
            var batched = references.ToDictionary(kv => kv.Key, kv => kv.Value.Forward(ids));
            for (var r = 0; r < rows.Length; r++)
            {
                var same = MaxDiff(logits.narrow(0, r, 1), batched[rows[r]].narrow(0, r, 1));
                Assert.True(same <= sameBatchTolerance, $"{family} row {r} (adapter {rows[r]}): max |Δlogit| vs attached on the same batch {same:E3}");
                var alone = MaxDiff(logits.narrow(0, r, 1), references[rows[r]].Forward(ids.narrow(0, r, 1)));
                Assert.True(alone <= AloneTolerance, $"{family} row {r} (adapter {rows[r]}): max |Δlogit| vs the row alone {alone:E3}");
            }
            // The adapters do change the rows they serve.
            var baseRow = references.TryGetValue(0, out var b0) ? b0 : null;
            if (baseRow is not null)
                for (var r = 0; r < rows.Length; r++)
                    if (rows[r] != 0) Assert.True(MaxDiff(logits.narrow(0, r, 1), baseRow.Forward(ids.narrow(0, r, 1))) > 0.1);
        }
        finally
        {
            foreach (var m in references.Values) m.Dispose();
        }
    }

    [Fact]
    public void MixedBatchRowsEqualEachAdapterAttachedAlone()
    {
        // qwen2-lora: all-linear r4; qwen2-qv: q/v only, r2 alpha 16; qwen2-rslora: alpha/√r; qwen2-regex: two MLP layers of layer 1.
        CheckMixedBatch("qwen2", ["qwen2-lora", "qwen2-qv", "qwen2-rslora", "qwen2-regex"], [0, 1, 2, 1, 3, 4]);
    }

    [Theory]
    [InlineData("phi3")] // qkv_proj and gate_up_proj fused in the checkpoint; the adapter adapts those fused layers
    [InlineData("qwen3")] // q/k norms: the fused q/k/v output is split before RoPE
    [InlineData("llama")]
    [InlineData("gemma2")] // soft-capping, eager attention
    public void EachFamilyServesPerRow(string family)
    {
        CheckMixedBatch(family, [family + "-lora"], [0, 1, 0, 1]);
    }

    [Fact]
    public void EveryRowOnOneAdapterMatchesPeftLogits()
    {
        using var served = LoadBase("qwen2");
        served.AddServingAdapter("other", Peft("qwen2-qv"));
        var k = served.AddServingAdapter("lora", Peft("qwen2-lora"));
        served.eval();
        using var expected = SafetensorsFile.Open(Path.Combine(Peft("qwen2-lora"), "expected.safetensors"));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = expected.ReadTensor("input_ids");
        served.SetRowAdapters(Enumerable.Repeat(k, (int)ids.shape[0]).ToArray());
        var logits = served.Forward(ids);
        var diff = MaxDiff(logits, expected.ReadTensor("adapter_logits"));
        Assert.True(diff <= 3e-4, $"vs PEFT's adapter logits: {diff:E3}"); // the fixture's own float32 noise, see PeftParityTests
        using var reference = Reference("qwen2", "qwen2-lora");
        var attached = MaxDiff(logits, reference.Forward(ids));
        Assert.True(attached <= SameBatchTolerance, $"vs attached: {attached:E3}");
    }

    [Fact]
    public void ChunkedAndSplitMlpPathsServePerRow()
    {
        var (savedChunk, savedSplit) = (Mlp.ChunkTokens, Mlp.SplitRows);
        try
        {
            // Split: gate and up as two multiplies over slices of the stacked weight; chunk: the MLP in pieces of ~8 tokens.
            (Mlp.ChunkTokens, Mlp.SplitRows) = (8, 1);
            // The attached reference chunks the flattened rows and multiplies gate and up separately (its fused buffer is
            // off while a training adapter is attached), the served model chunks along the sequence: another summation
            // order, measured 2.9e-6 apart.
            CheckMixedBatch("qwen2", ["qwen2-lora", "qwen2-qv"], [1, 0, 2], t: 7, sameBatchTolerance: 1e-5);
            CheckMixedBatch("phi3", ["phi3-lora"], [1, 0, 1], t: 7, sameBatchTolerance: 1e-5);
        }
        finally
        {
            (Mlp.ChunkTokens, Mlp.SplitRows) = (savedChunk, savedSplit);
        }
    }

    [Fact]
    public void DecodeWithKvCacheKeepsPerRowAdapters()
    {
        string[] adapters = ["qwen2-lora", "qwen2-qv"];
        int[] rows = [2, 0, 1, 2];
        using var served = LoadBase("qwen2");
        foreach (var a in adapters) served.AddServingAdapter(a, Peft(a));
        served.eval();
        var references = new[] { Reference("qwen2", null), Reference("qwen2", adapters[0]), Reference("qwen2", adapters[1]) };
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            const long prompt = 6, steps = 4;
            var ids = Ids(rows.Length, prompt + steps, 23);
            // The served model and, for comparison, each reference on the whole batch: prefill, then one token per step.
            var caches = new[] { served.NewCache(rows.Length, prompt + steps) }.Concat(references.Select(_ => served.NewCache(rows.Length, prompt + steps))).ToArray();
            var models = new[] { served }.Concat(references).ToArray();
            served.SetRowAdapters(rows);
            var last = models.Select((m, i) => m.Forward(ids.narrow(1, 0, prompt), ones(rows.Length, prompt, dtype: ScalarType.Bool), null, caches[i], lastOnly: true)).ToArray();
            for (var step = 0; step <= steps; step++)
            {
                var upTo = prompt + step;
                for (var r = 0; r < rows.Length; r++)
                {
                    var same = MaxDiff(last[0].narrow(0, r, 1), last[1 + rows[r]].narrow(0, r, 1));
                    Assert.True(same <= SameBatchTolerance, $"step {step} row {r} (adapter {rows[r]}): max |Δlogit| vs attached with a cache {same:E3}");
                    // The row alone, whole sequence, no cache.
                    var alone = references[rows[r]].Forward(ids.narrow(0, r, 1).narrow(1, 0, upTo)).narrow(1, upTo - 1, 1);
                    var diff = MaxDiff(last[0].narrow(0, r, 1), alone);
                    Assert.True(diff <= AloneTolerance, $"step {step} row {r} (adapter {rows[r]}): max |Δlogit| vs the row alone {diff:E3}");
                }
                if (step == steps) break;
                var next = ids.narrow(1, upTo, 1);
                last = models.Select((m, i) => m.Forward(next, ones(rows.Length, upTo + 1, dtype: ScalarType.Bool), null, caches[i], lastOnly: true)).ToArray();
            }
            foreach (var c in caches) c.Dispose();
        }
        finally
        {
            foreach (var m in references) m.Dispose();
        }
    }

    [Fact]
    public void AllBaseRowsAreBitwiseTheBaseModel()
    {
        using var plain = LoadBase("qwen2");
        using var served = LoadBase("qwen2");
        served.AddServingAdapter("a", Peft("qwen2-lora"));
        served.AddServingAdapter("b", Peft("qwen2-qv"));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = Ids(3, 8, 5);
        var expected = plain.Forward(ids);
        served.SetRowAdapters([1, 2, 0]);
        Assert.True(MaxDiff(served.Forward(ids).narrow(0, 2, 1), expected.narrow(0, 2, 1)) <= SameBatchTolerance);
        served.SetRowAdapters(null);
        Assert.True(served.Forward(ids).eq(expected).all().item<bool>(), "SetRowAdapters(null) must be bitwise the base model");
        served.SetRowAdapters([0, 0, 0]);
        Assert.True(served.Forward(ids).eq(expected).all().item<bool>(), "all rows 0 must be bitwise the base model");
    }

    static void AssertRefused(Action act, string folder, string phrase)
    {
        var e = Assert.Throws<OspreyException>(act);
        Assert.Contains(folder, e.Message, StringComparison.Ordinal);
        Assert.Contains(phrase, e.Message, StringComparison.Ordinal);
        Assert.EndsWith(".", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(". ", e.Message.Replace(folder, "", StringComparison.Ordinal), StringComparison.Ordinal); // one sentence
    }

    [Fact]
    public void UnservableAdaptersAreRefusedNamingTheFolder()
    {
        using var model = LoadBase("qwen2");
        AssertRefused(() => model.AddServingAdapter("dora", Peft("qwen2-dora")), Peft("qwen2-dora"), "osprey export --merge_lora true");
        AssertRefused(() => model.AddServingAdapter("norm", Peft("qwen2-save-norm")), Peft("qwen2-save-norm"), "modules_to_save");
        // An adapter of another model: phi3's adapts qkv_proj, which qwen2 does not have.
        AssertRefused(() => model.AddServingAdapter("phi", Peft("phi3-lora")), Peft("phi3-lora"), "different model");

        using var dir = new TempDirectory();
        var wrong = Path.Combine(dir.Path, "wrong-shape");
        Directory.CreateDirectory(wrong);
        File.Copy(Path.Combine(Peft("qwen2-qv"), PeftAdapter.ConfigFile), Path.Combine(wrong, PeftAdapter.ConfigFile));
        using (var file = SafetensorsFile.Open(Path.Combine(Peft("qwen2-qv"), PeftAdapter.WeightsFile)))
        {
            var tensors = file.Entries.Select(e =>
            {
                var t = file.ReadTensor(e.Name);
                // One lora_A one column wider than its layer's input.
                return new KeyValuePair<string, Tensor>(e.Name, e.Name.Contains("layers.1.self_attn.q_proj.lora_A", StringComparison.Ordinal) ? cat([t, t.narrow(1, 0, 1)], 1) : t);
            }).ToList();
            SafetensorsWriter.Write(Path.Combine(wrong, PeftAdapter.WeightsFile), tensors);
        }
        AssertRefused(() => model.AddServingAdapter("wrong", wrong), wrong, "does not fit");

        var seqCls = Path.Combine(dir.Path, "reward");
        Directory.CreateDirectory(seqCls);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Peft("qwen2-qv"), PeftAdapter.ConfigFile)))!.AsObject();
        config["task_type"] = "SEQ_CLS";
        File.WriteAllText(Path.Combine(seqCls, PeftAdapter.ConfigFile), config.ToJsonString());
        File.Copy(Path.Combine(Peft("qwen2-qv"), PeftAdapter.WeightsFile), Path.Combine(seqCls, PeftAdapter.WeightsFile));
        AssertRefused(() => model.AddServingAdapter("reward", seqCls), seqCls, "SEQ_CLS");

        Assert.Empty(model.ServingAdapterNames); // nothing half-loaded by the refusals
        Assert.Equal(1, model.AddServingAdapter("qv", Peft("qwen2-qv")));
        AssertRefused(() => model.AddServingAdapter("qv", Peft("qwen2-lora")), Peft("qwen2-lora"), "already loaded");
        var training = Assert.Throws<OspreyException>(() => model.AttachLora(new LoraOptions()));
        Assert.Contains("mutually exclusive", training.Message, StringComparison.Ordinal);
        Assert.Throws<OspreyException>(() => model.SetRowAdapters([0, 2]));

        using var trained = LoadBase("qwen2");
        trained.AttachLora(new LoraOptions());
        AssertRefused(() => trained.AddServingAdapter("qv", Peft("qwen2-qv")), Peft("qwen2-qv"), "mutually exclusive");
    }
}
