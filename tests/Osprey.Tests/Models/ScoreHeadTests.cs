using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// Reward models in transformers' *ForSequenceClassification layout: parity of <see cref="CausalLM.Scores"/> with
/// fixtures from tools/make_rm_fixtures.py, Save/Load round trips, <see cref="CausalLM.AttachScoreHead"/>, SEQ_CLS
/// PEFT adapters and <c>osprey infer</c>'s score mode.
/// </summary>
public sealed class ScoreHeadTests
{
    public ScoreHeadTests() => TorchRuntime.Initialize(DeviceSpec.Cpu);

    static string Rm(string family) => Path.Combine(TestPaths.Fixtures, "rm", family);

    static (Tensor Ids, Tensor Mask, Tensor Scores) Expected(string family)
    {
        using var f = SafetensorsFile.Open(Path.Combine(Rm(family), "expected.safetensors"));
        return (f.ReadTensor("input_ids"), f.ReadTensor("attention_mask"), f.ReadTensor("scores"));
    }

    public static TheoryData<string> Families => new() { "qwen2", "llama", "qwen3", "mistral", "phi3", "gemma2" };

    [Theory]
    [MemberData(nameof(Families))]
    public void ScoresMatchTransformers(string family)
    {
        using var model = CausalLM.Load(Rm(family), CPU, ScalarType.Float32);
        Assert.True(model.IsRewardModel);
        Assert.Equal(1, model.NumLabels);
        Assert.DoesNotContain("lm_head.weight", model.state_dict().Keys);
        var (ids, mask, expected) = Expected(family);
        using var _ = no_grad();
        using var withMask = model.Scores(ids, mask);
        Assert.Equal(new long[] { ids.shape[0], 1 }, withMask.shape);
        Assert.True(withMask.allclose(expected, rtol: 0, atol: 1e-4), $"{family}: {string.Join(", ", withMask.data<float>().ToArray())} vs {string.Join(", ", expected.data<float>().ToArray())}");
        using var fromPad = model.Scores(ids); // pad_token_id 0 from config.json
        Assert.True(fromPad.allclose(expected, rtol: 0, atol: 1e-4));
        Assert.Throws<InvalidOperationException>(() => model.Forward(ids));
    }

    [Fact]
    public void SaveLoadRoundTripsTensorsAndWritesASequenceClassificationConfig()
    {
        using var temp = new TempDirectory();
        using var model = CausalLM.Load(Rm("llama"), CPU, ScalarType.Float32);
        model.Save(temp.Path, long.MaxValue);
        var config = JsonNode.Parse(File.ReadAllText(temp.File("config.json")))!.AsObject();
        Assert.Equal("LlamaForSequenceClassification", config["architectures"]![0]!.GetValue<string>());
        Assert.Single(config["id2label"]!.AsObject());
        using (var saved = SafetensorsCheckpoint.Open(temp.Path))
        {
            Assert.Contains("score.weight", saved.Names);
            Assert.DoesNotContain("lm_head.weight", saved.Names);
            foreach (var (name, t) in model.CheckpointTensors())
            {
                using var back = saved.ReadTensor(name);
                Assert.True(back.allclose(t, rtol: 0, atol: 0), name);
            }
        }
        using var again = CausalLM.Load(temp.Path, CPU, ScalarType.Float32);
        var (ids, mask, expected) = Expected("llama");
        using var _ = no_grad();
        Assert.True(again.Scores(ids, mask).allclose(expected, rtol: 0, atol: 1e-4));
    }

    [Fact]
    public void AttachScoreHeadMakesATrainableRewardModel()
    {
        using var temp = new TempDirectory();
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", "llama"), CPU, ScalarType.Float32);
        Assert.False(model.IsRewardModel);
        model.AttachScoreHead(seed: 3);
        Assert.True(model.IsRewardModel);
        var keys = model.state_dict().Keys.ToList();
        Assert.Contains("score.weight", keys);
        Assert.DoesNotContain("lm_head.weight", keys);
        Assert.True(model.ScoreWeight!.requires_grad);
        // transformers' init: normal(0, initializer_range = 0.2 in this config)
        var std = model.ScoreWeight.std().item<float>();
        Assert.InRange(std, 0.1, 0.3);
        var (ids, mask, _) = Expected("llama");
        var scores = model.Scores(ids, mask);
        Assert.Equal(new long[] { ids.shape[0], 1 }, scores.shape);
        Assert.Equal(ScalarType.Float32, scores.dtype);
        scores.sum().backward();
        Assert.NotNull(model.ScoreWeight.grad);
        Assert.True(model.ScoreWeight.grad!.abs().sum().item<float>() > 0);
        Assert.Throws<InvalidOperationException>(() => model.Forward(ids));

        // The same seed gives the same head; the saved folder loads back as a reward model with the same scores.
        using var twin = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", "llama"), CPU, ScalarType.Float32);
        twin.AttachScoreHead(seed: 3);
        Assert.True(twin.ScoreWeight!.allclose(model.ScoreWeight, rtol: 0, atol: 0));
        model.Save(temp.Path, long.MaxValue);
        using var back = CausalLM.Load(temp.Path, CPU, ScalarType.Float32);
        Assert.True(back.IsRewardModel);
        using var _ = no_grad();
        Assert.True(back.Scores(ids, mask).allclose(scores.detach(), rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void SeqClsAdapterSavesScoreAndMergesIntoACausalLM()
    {
        using var temp = new TempDirectory();
        var basePath = Path.Combine(TestPaths.Fixtures, "parity", "qwen2");
        using var model = CausalLM.Load(basePath, CPU, ScalarType.Float32);
        model.AttachScoreHead(seed: 1);
        var options = new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = ["all-linear"] };
        var adapted = model.AttachLora(options, seed: 2);
        Assert.DoesNotContain("score", adapted);
        using (no_grad())
        {
            foreach (var (_, p) in model.LoraParameters()) p.normal_(0, 0.05);
            model.ScoreWeight!.add_(0.1);
        }
        var (ids, mask, _) = Expected("qwen2");
        using var expected = model.Scores(ids, mask).detach();
        PeftAdapter.Save(model, options, temp.Path, basePath);

        var config = JsonNode.Parse(File.ReadAllText(temp.File(PeftAdapter.ConfigFile)))!.AsObject();
        Assert.Equal("SEQ_CLS", config["task_type"]!.GetValue<string>());
        Assert.Contains("score", config["modules_to_save"]!.AsArray().Select(n => n!.GetValue<string>()));
        using (var f = SafetensorsFile.Open(temp.File(PeftAdapter.WeightsFile)))
            Assert.Contains(f.Entries, e => e.Name == "base_model.model.score.weight");
        Assert.True(PeftAdapter.IsSequenceClassification(temp.Path));

        using var merged = CausalLM.Load(basePath, CPU, ScalarType.Float32);
        PeftAdapter.MergeInto(merged, temp.Path);
        Assert.True(merged.IsRewardModel);
        using var _ = no_grad();
        Assert.True(merged.Scores(ids, mask).allclose(expected, rtol: 0, atol: 1e-4));

        using var loaded = CausalLM.Load(basePath, CPU, ScalarType.Float32);
        var (read, _) = PeftAdapter.ReadConfig(temp.Path);
        loaded.AttachScoreHead();
        loaded.AttachLora(read);
        PeftAdapter.LoadInto(loaded, temp.Path);
        Assert.True(loaded.Scores(ids, mask).allclose(expected, rtol: 0, atol: 1e-5));
    }

    [Fact]
    public void InferPrintsScoresForInputIdsAndDatasetRows()
    {
        using var model = CausalLM.Load(Rm("qwen2"), CPU, ScalarType.Float32);
        using var _ = no_grad();
        var run = CliRun.Of(["infer", "--model", Rm("qwen2"), "--device", "cpu", "--input_ids", "5 6 7 8;9 10"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        using var s0 = model.Scores(tensor(new long[] { 5, 6, 7, 8 }, [1, 4]));
        using var s1 = model.Scores(tensor(new long[] { 9, 10 }, [1, 2]));
        Assert.StartsWith("[0] ", lines[0]);
        Assert.Equal(s0.item<float>(), float.Parse(lines[0][4..], System.Globalization.CultureInfo.InvariantCulture), 4);
        Assert.Equal(s1.item<float>(), float.Parse(lines[1][4..], System.Globalization.CultureInfo.InvariantCulture), 4);

        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("rows.jsonl"),
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n" +
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"go away\"}]}\n");
        var rows = CliRun.Of(["infer", "--model", Rm("qwen2"), "--device", "cpu", "--val_dataset", temp.File("rows.jsonl")]);
        Assert.True(rows.ExitCode == 0, rows.ToString());
        var records = rows.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal(2, r["messages"]!.AsArray().Count));
        var scores = records.Select(r => r["score"]!.GetValue<double>()).ToList();
        Assert.NotEqual(scores[0], scores[1]);
    }
}
