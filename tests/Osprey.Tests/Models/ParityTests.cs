using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// Numerical parity with transformers 5.17 for every family: float32 logits within 1e-4 at every real
/// (non-padding) position, the loss within 1e-5, greedy generations identical alone and batched with left
/// padding, and the state-dict names and shapes identical.
/// </summary>
public sealed class ParityTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in ParityCase.Folders()) data.Add(dir);
        return data;
    }

    static CausalLM LoadModel(ParityCase c)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return CausalLM.Load(c.Directory, CPU, ScalarType.Float32);
    }

    [Fact]
    public void EveryFamilyHasAFixture()
    {
        var names = ParityCase.Folders().Select(Path.GetFileName).ToHashSet();
        foreach (var family in new[] { "llama", "llama3", "qwen2", "qwen3", "mistral", "phi3", "gemma2", "gemma3_text" })
            Assert.Contains(family, names);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsAndLossMatchTransformers(string dir)
    {
        var c = ParityCase.Load(dir);
        using var model = LoadModel(c);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = c.Tensor("input_ids");
        var mask = c.Tensor("attention_mask");
        var logits = model.Forward(ids, mask, c.Tensor("position_ids"));
        var expected = c.Tensor("logits");
        Assert.Equal(expected.shape, logits.shape);
        var real = mask.to_type(ScalarType.Bool).unsqueeze(-1);
        var diff = (logits - expected).abs().masked_fill(real.logical_not(), 0).max().item<float>();
        Assert.True(diff <= 1e-4f, $"{c.Name}: max |Δlogit| = {diff:E3} over real positions (limit 1e-4)");
        Assert.True(diff > 0 || logits.abs().max().item<float>() > 0.1f, "logits are all zero");

        var labels = c.Tensor("labels");
        var refLoss = c.Golden.GetProperty("loss_batch").GetDouble();
        var loss = CausalLM.Loss(logits, labels).item<float>();
        Assert.True(Math.Abs(loss - refLoss) <= 1e-5, $"{c.Name}: loss {loss} vs transformers {refLoss}");
        // The loss formula alone, on transformers' own logits.
        var lossOnTheirLogits = CausalLM.Loss(expected, labels).item<float>();
        Assert.True(Math.Abs(lossOnTheirLogits - refLoss) <= 1e-5, $"{c.Name}: loss of reference logits {lossOnTheirLogits} vs {refLoss}");

        // The plain training case: one unpadded row, default positions, no mask.
        var row = ids.narrow(0, 0, 1);
        var loss0 = CausalLM.Loss(model.Forward(row), c.Tensor("labels").narrow(0, 0, 1)).item<float>();
        var ref0 = c.Golden.GetProperty("loss_row0_unmasked").GetDouble();
        Assert.True(Math.Abs(loss0 - ref0) <= 1e-5, $"{c.Name}: unmasked loss {loss0} vs transformers {ref0}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GreedyGenerationMatchesTransformers(string dir)
    {
        var c = ParityCase.Load(dir);
        using var model = LoadModel(c);
        var options = SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(c.Directory)) with
        {
            MaxTokens = c.Golden.GetProperty("max_new_tokens").GetInt32(),
            DoSample = false,
        };
        var generator = new TokenGenerator(model);
        var prompts = c.IntLists("prompts");
        var singles = c.IntLists("greedy_single");
        for (int i = 0; i < prompts.Count; i++)
            Assert.Equal(singles[i], generator.Generate(prompts[i], options).Tokens);

        var batched = generator.Generate(prompts, options);
        var refBatched = c.IntLists("greedy_batched");
        for (int i = 0; i < prompts.Count; i++)
            Assert.Equal(refBatched[i], batched[i].Tokens);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void StateDictNamesAndShapesMatchTransformers(string dir)
    {
        var c = ParityCase.Load(dir);
        using var model = LoadModel(c);
        var ours = model.state_dict().Select(kv => $"{kv.Key} [{string.Join(",", kv.Value.shape)}]").ToList();
        if (model.Spec.TieWordEmbeddings)
            ours.Add($"lm_head.weight [{model.Spec.VocabSize},{model.Spec.HiddenSize}]"); // transformers lists the tied alias
        var theirs = c.Golden.GetProperty("state_dict").EnumerateArray()
            .Select(e => $"{e[0].GetString()} [{string.Join(",", e[1].EnumerateArray().Select(x => x.GetInt64()))}]").ToList();
        Assert.Equal(theirs.Order(StringComparer.Ordinal), ours.Order(StringComparer.Ordinal));
    }
}
