using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tokenization;
using Osprey.Training;
using Osprey.Training.Grpo;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Training.Grpo;

/// <summary>
/// GRPO and PPO rollouts run on the in-process serving engine over the training model. The reference is
/// <see cref="TokenGenerator"/> on the same model, one prompt at a time: greedy rollouts from the engine equal its tokens
/// for the tiny demo model and the Phi-3 fixture (whose q/k/v and gate/up projections are views of one fused buffer), with
/// LoRA (read through the merged copy of the adapted weights, the default, and unmerged) and with full training, before
/// and after real AdamW steps. The steps must change the greedy tokens, so an engine that had copied the weights (or
/// merged the adapter once, when it started) would answer with the old tokens and fail.
/// </summary>
public sealed class RolloutSamplerTests
{
    static readonly SamplingParams s_greedy = new() { MaxTokens = 8, Temperature = 0 };

    [Theory]
    [InlineData("demo", "lora")]
    [InlineData("demo", "lora-unmerged")]
    [InlineData("demo", "full")]
    [InlineData("phi3", "lora")]
    [InlineData("phi3", "lora-unmerged")]
    [InlineData("phi3", "full")]
    public void GreedyEngineRolloutsEqualTheGeneratorsOnTheLiveWeights(string fixture, string trainType)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = fixture == "demo" ? TestDemoModel.Folder : Path.Combine(TestPaths.Fixtures, "parity", fixture);
        using var model = CausalLM.Load(folder, CPU, ScalarType.Float32);
        var tokenizer = Tokenizer.Load(folder);
        using var optimizer = new AdamW(0.9, 0.999, 1e-8);
        var lora = trainType.StartsWith("lora", StringComparison.Ordinal);
        if (lora)
        {
            // Dropout on, so the test also sees that rollouts run in evaluation mode.
            model.AttachLora(new LoraOptions { Rank = 8, Alpha = 16, Dropout = 0.5 }, seed: 3);
            foreach (var (name, p) in model.LoraParameters()) optimizer.Add(name, p, 0.0, relocatable: true);
        }
        else
        {
            foreach (var (name, p) in model.BaseParameters())
            {
                p.requires_grad_(true);
                optimizer.Add(name, p, 0.0);
            }
        }
        model.train();
        var vocab = model.Spec.VocabSize;
        IReadOnlyList<int>[] prompts = [[1, 17, 42, 99, 5], [7, 8], [30, 31, 32, 33, 34, 35, 36, 37, 38]];
        prompts = prompts.Select(p => (IReadOnlyList<int>)p.Select(id => id % vocab).ToArray()).ToArray();

        optimizer.Prepare();
        using var sampler = RolloutSampler.Create(model, tokenizer, prompts.Length, prompts.Max(p => p.Count) + s_greedy.MaxTokens!.Value, 0.3,
            mergeLora: trainType != "lora-unmerged");
        Assert.True(sampler.Engine is not null, sampler.Description);
        Assert.Equal(trainType == "lora", sampler.Merged);

        var before = Tokens(sampler.Generate(prompts, s_greedy));
        Assert.True(model.training, "the sampler must hand the model back in training mode");
        Assert.Equal(Reference(model, prompts), before);

        // Teach every prompt to go on with one token the policy does not pick now (learning rates big enough that the
        // greedy tokens change within a few steps).
        var target = Enumerable.Range(3, vocab - 3).First(t => before.All(row => row[0] != t));
        for (var step = 0; step < 4; step++)
        {
            using var scope = NewDisposeScope();
            foreach (var p in prompts)
            {
                var ids = p.Select(i => (long)i).Concat(Enumerable.Repeat((long)target, 4)).ToArray();
                var labels = ids.Select((id, i) => i < p.Count ? -100L : id).ToArray();
                using var r = model.ForwardBackward(tensor(ids, [1, ids.Length]), tensor(labels, [1, labels.Length]), null, new TrainForwardOptions { Backward = true });
            }
            optimizer.ClipGradients(0);
            optimizer.Step(lora ? 5e-2 : 1e-2);
            optimizer.ZeroGrad();
        }

        var after = Tokens(sampler.Generate(prompts, s_greedy));
        Assert.NotEqual(before, after);
        Assert.Equal(Reference(model, prompts), after);
    }

    [Fact]
    public void SeededSampledRolloutsRepeatAndDifferPerRequest()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(TestDemoModel.Folder, CPU, ScalarType.Float32);
        var tokenizer = Tokenizer.Load(TestDemoModel.Folder);
        IReadOnlyList<int> prompt = [1, 17, 42, 99, 5];
        var prompts = Enumerable.Repeat(prompt, 6).ToList();
        var sampling = new SamplingParams { MaxTokens = 12, Temperature = 1.0, Seed = 77 };
        using var sampler = RolloutSampler.Create(model, tokenizer, prompts.Count, 32, 0.3);
        Assert.NotNull(sampler.Engine);

        var first = Tokens(sampler.Generate(prompts, sampling));
        var again = Tokens(sampler.Generate(prompts, sampling));
        Assert.Equal(first, again);
        // Six completions of one prompt: each request has its own random stream, so a GRPO group is not six copies.
        Assert.True(first.Select(t => string.Join(",", t)).Distinct().Count() > 1);
        // The same requests through the fallback sampler (no engine) draw from one stream for the batch instead.
        using var fallback = RolloutSampler.Create(model, tokenizer, prompts.Count, 32, 0.3, engineOff: "a test");
        Assert.Null(fallback.Engine);
        Assert.Contains("TokenGenerator", fallback.Description);
        Assert.Equal(Tokens(new TokenGenerator(model).Generate(prompts, sampling)), Tokens(fallback.Generate(prompts, sampling)));
    }

    static List<int[]> Tokens(IEnumerable<GenerationResult> results) => results.Select(r => r.Tokens.ToArray()).ToList();

    static List<int[]> Reference(CausalLM model, IEnumerable<IReadOnlyList<int>> prompts)
    {
        model.eval();
        try
        {
            return prompts.Select(p => new TokenGenerator(model).Generate(p, s_greedy).Tokens.ToArray()).ToList();
        }
        finally
        {
            model.train();
        }
    }
}
