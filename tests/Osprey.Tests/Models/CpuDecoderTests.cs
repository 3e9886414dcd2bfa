using Osprey.Inference;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// The managed CPU decode step (<see cref="CpuDecoder"/>) on the parity fixtures (tools/make_parity_fixtures.py, float32):
/// greedy decoding through it gives transformers' own tokens (golden.json), and teacher-forced step by step its logits
/// and the keys/values it writes equal the libtorch path's on the same cache contents: dense to 1e-5 of the logits'
/// range; with LLM.int8 and 4-bit GPTQ bases and the int8 head to 1e-3 (those kernels round x to 16-bit integers per
/// group of columns); in bfloat16 within bfloat16's rounding. Models it does not take (float16)
/// keep the libtorch path and say why. Every parity family is taken: llama, llama3, qwen2, qwen3, phi3 (partial RoPE,
/// stacked projections), mistral (sliding window), gemma2 (sandwich norms, soft caps, window) and gemma3_text.
/// </summary>
public sealed class CpuDecoderTests
{
    public static TheoryData<string> Taken => new() { "llama", "llama3", "qwen2", "qwen3", "phi3", "mistral", "gemma2", "gemma3_text" };

    static CausalLM Load(string family, ScalarType dtype = ScalarType.Float32)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return CausalLM.Load(CliRun.Fixture(family), CPU, dtype);
    }

    [Theory]
    [MemberData(nameof(Taken))]
    public void GreedyDecodeGivesTransformersTokens(string family)
    {
        var c = ParityCase.Load(CliRun.Fixture(family));
        using var model = Load(family);
        model.UseCpuDecoder = true;
        var options = SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(c.Directory)) with
        {
            MaxTokens = c.Golden.GetProperty("max_new_tokens").GetInt32(),
            DoSample = false,
        };
        var generator = new TokenGenerator(model);
        var prompts = c.IntLists("prompts");
        var expected = c.IntLists("greedy_single");
        for (int i = 0; i < prompts.Count; i++)
            Assert.Equal(expected[i], generator.Generate(prompts[i], options).Tokens);
        Assert.Null(model.CpuDecodeRefusal);
        Assert.True(model.CpuDecodeSteps >= expected.Sum(e => e.Count - 1), $"only {model.CpuDecodeSteps} steps ran in the managed decoder");
    }

    /// <summary>
    /// Feeds the same tokens to two caches, one step at a time, through the managed decoder and through libtorch; returns
    /// the largest logit difference relative to the logits' range, and checks the caches hold the same keys and values.
    /// </summary>
    static double TeacherForced(CausalLM model, int steps = 12, double cacheTolerance = 1e-5)
    {
        using var _ = no_grad();
        var rng = new Random(7);
        var prompt = Enumerable.Range(0, 6).Select(_ => (long)rng.Next(3, model.Spec.VocabSize)).ToArray();
        using var fast = model.NewCache(1, 32);
        using var slow = model.NewCache(1, 32);
        using (var ids = tensor(prompt, [1, prompt.Length]))
        {
            model.UseCpuDecoder = false;
            model.Forward(ids, cache: fast, lastOnly: true).Dispose();
            model.Forward(ids, cache: slow, lastOnly: true).Dispose();
        }
        double worst = 0;
        var before = model.CpuDecodeSteps;
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            var id = tensor(new long[] { rng.Next(3, model.Spec.VocabSize) }, [1, 1]);
            var pos = tensor(new long[] { prompt.Length + s }, [1, 1]);
            model.UseCpuDecoder = true;
            var a = model.Forward(id, positions: pos, cache: fast, lastOnly: true).to_type(ScalarType.Float64);
            model.UseCpuDecoder = false;
            var b = model.Forward(id, positions: pos, cache: slow, lastOnly: true).to_type(ScalarType.Float64);
            Assert.Equal(b.shape, a.shape);
            var range = b.abs().max().item<double>();
            worst = Math.Max(worst, (a - b).abs().max().item<double>() / Math.Max(range, 1e-30));
        }
        Assert.Equal(before + steps, model.CpuDecodeSteps);
        Assert.Equal(slow.Length, fast.Length);
        for (int layer = 0; layer < model.Spec.Layers.Count; layer++)
        {
            var (fk, fv) = fast.Buffers(layer);
            var (sk, sv) = slow.Buffers(layer);
            foreach (var (x, y) in new[] { (fk, sk), (fv, sv) })
            {
                using var d = (x.to_type(ScalarType.Float64) - y.to_type(ScalarType.Float64)).abs().max();
                using var r = y.to_type(ScalarType.Float64).abs().max();
                Assert.True(d.item<double>() <= cacheTolerance * r.item<double>(), $"layer {layer}: cache differs by {d.item<double>()} (range {r.item<double>()})");
            }
        }
        return worst;
    }

    [Theory]
    [MemberData(nameof(Taken))]
    public void StepLogitsAndCacheEqualTheLibtorchPath(string family)
    {
        using var model = Load(family);
        var error = TeacherForced(model);
        Assert.True(error <= 1e-5, $"{family}: logits differ by {error:E2} of their range");
    }

    [Fact]
    public void Bfloat16StepsStayWithinBfloat16Rounding()
    {
        using var model = Load("qwen2", ScalarType.BFloat16);
        // Sums taken in another order round differently now and then: a few bfloat16 ulps (2^-8 relative) of the range.
        var error = TeacherForced(model, cacheTolerance: 3e-2);
        Assert.True(error <= 3e-2, $"bfloat16 logits differ by {error:E2} of their range");
    }

    [Fact]
    public void Int8HeadAndLlmInt8BasesEqualTheLibtorchPath()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var options = new ModelLoadOptions
        {
            Device = DeviceSpec.Cpu, DType = "float32", Notice = TextWriter.Null,
            Quantization = new BnbLoader(new QuantizationOptions { QuantMethod = "bnb", QuantBits = 8 }),
        };
        using var model = CausalLM.Load(CliRun.Fixture("qwen2"), options);
        Assert.True(model.QuantizedLayerCount > 0);
        model.UseInt8Head = true;
        // The 8-bit kernel multiplies x rounded to 16-bit integers per group of columns (≤ 2^-16 of its largest |x|); over two layers that reaches ~2e-4: 1e-3.
        var error = TeacherForced(model, cacheTolerance: 1e-3);
        Assert.True(error <= 1e-3, $"int8 logits differ by {error:E2} of their range");
    }

    [Fact]
    public void GptqBasesEqualTheLibtorchPath()
    {
        using var model = Load("qwen3");
        using (no_grad())
            foreach (var (path, layer) in model.LinearLayers().Where(l => l.Path.StartsWith("model.layers.", StringComparison.Ordinal)).ToList())
                layer.UseBase(RoundToNearest(layer.Weight, 32));
        Assert.True(model.QuantizedLayerCount > 0);
        // As the 8-bit kernel, the 4-bit one rounds x to 16-bit integers per group: 1e-3.
        var error = TeacherForced(model, cacheTolerance: 1e-3);
        Assert.True(error <= 1e-3, $"GPTQ logits differ by {error:E2} of their range");
    }

    /// <summary>Asymmetric 4-bit round-to-nearest in groups (GPTQ's storage without its error feedback): any valid codes do here.</summary>
    static GptqWeight RoundToNearest(Tensor weight, int group)
    {
        using var scope = NewDisposeScope();
        long rows = weight.shape[0], cols = weight.shape[1];
        var w = weight.to_type(ScalarType.Float32).view(rows, cols / group, group);
        var lo = w.amin([2], keepdim: true).clamp_max(0);
        var hi = w.amax([2], keepdim: true).clamp_min(0);
        var scale = ((hi - lo) / 15).clamp_min(1e-8).to_type(ScalarType.Float16).to_type(ScalarType.Float32);
        var zero = (lo.neg() / scale).round().clamp(1, 15);
        var q = (w / scale + zero).round().clamp(0, 15).view(rows, cols).to_type(ScalarType.Int32);
        var groups = arange(cols, dtype: ScalarType.Int32).div(group, rounding_mode: RoundingMode.floor);
        using var result = new GptqResult(q, scale.squeeze(2).t().contiguous(), zero.squeeze(2).t().contiguous().to_type(ScalarType.Int32), groups, zeros(rows, cols));
        return GptqWeight.Pack(result, 4, ScalarType.Float32);
    }

    [Fact]
    public void AModelItDoesNotTakeKeepsTheLibtorchPathAndSaysWhy()
    {
        var c = ParityCase.Load(CliRun.Fixture("qwen2"));
        using var model = Load("qwen2", ScalarType.Float16);
        model.UseCpuDecoder = true;
        var options = SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(c.Directory)) with { MaxTokens = 4, DoSample = false };
        var tokens = new TokenGenerator(model).Generate(c.IntLists("prompts")[0], options).Tokens;
        Assert.Equal(4, tokens.Count);
        Assert.Equal(0, model.CpuDecodeSteps);
        Assert.Contains("Float16", model.CpuDecodeRefusal);
    }

    [Theory]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("gemma2")]
    public async Task TheServingEngineDecodesOneRequestInItAndGetsTransformersTokens(string family)
    {
        // infer_golden.json: transformers' greedy continuations (tools/make_parity_fixtures.py). One request at a time, so
        // every decode step is a slot step of one row, which the managed decoder takes.
        var folder = CliRun.Fixture(family);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "infer_golden.json")));
        using var model = Load(family);
        model.UseCpuDecoder = true;
        using var engine = new Osprey.Serving.InferenceEngine(model, Osprey.Tokenization.Tokenizer.Load(folder), new Osprey.Serving.EngineOptions { MaxBatchSize = 4, MaxModelLen = 256 });
        var cases = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var settings = c.GetProperty("settings");
            if (settings.GetProperty("repetition_penalty").ValueKind == System.Text.Json.JsonValueKind.Number) continue;
            var prompt = c.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var expected = c.GetProperty("new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var before = model.CpuDecodeSteps;
            var result = await engine.GenerateAsync(new Osprey.Serving.EngineRequest(prompt,
                new SamplingParams { MaxTokens = settings.GetProperty("max_new_tokens").GetInt32(), Temperature = 0 }));
            Assert.Equal(expected, result.Tokens.Select(t => t.TokenId));
            Assert.Equal(before + expected.Length - 1, model.CpuDecodeSteps);
            cases++;
        }
        Assert.True(cases > 0);
    }

    [Fact]
    public void WeightsMovedToNewStorageAreReadWhereTheyNowAre()
    {
        // AdamW moves trained parameters into flat buffers with set_, and dequantizing a base does too: a decoder built
        // before must not read the old storage. Perturbed new weights make a stale read visible in the logits.
        using var model = Load("qwen2");
        TeacherForced(model, steps: 2);
        using (no_grad())
            foreach (var (_, layer) in model.LinearLayers().Where(l => l.Path.EndsWith("mlp.down_proj", StringComparison.Ordinal)).ToList())
            {
                var moved = (layer.Weight * 1.5).contiguous();
                layer.Weight.set_(moved);
            }
        var error = TeacherForced(model, steps: 4);
        Assert.True(error <= 1e-5, $"after the move the logits differ by {error:E2} of their range");
    }

    [Fact]
    public void AnAdapterAttachedAfterwardsSendsStepsBackToLibtorch()
    {
        using var model = Load("qwen2");
        var options = new SamplingParams { MaxTokens = 6, DoSample = false };
        var generator = new TokenGenerator(model);
        generator.Generate([5, 6, 7], options);
        var steps = model.CpuDecodeSteps;
        Assert.True(steps > 0);
        model.AttachLora(new LoraOptions { Rank = 2, TargetModules = ["q_proj"], Dropout = 0 }, seed: 1);
        generator.Generate([5, 6, 7], options);
        Assert.Equal(steps, model.CpuDecodeSteps);
    }
}
