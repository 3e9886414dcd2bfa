using System.Text.Json;
using Osprey.Tests.Cli.Commands;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training;

/// <summary>
/// <c>osprey rlhf</c> end to end on the CPU: on the shipped, separable preference set (chosen answers against
/// "I don't know."), each preference loss falls and the reward accuracy, evaluated on the training pairs, ends at
/// 0.9 or more (for DPO it starts at 0: the policy equals its reference); the saved adapter works with
/// <c>osprey infer --adapters</c>; full DPO with a reference copy resumes bit-identically.
/// </summary>
public sealed class RlhfCommandTests
{
    static string Data(string name) => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", name);

    static CliRun Rlhf(params string[] flags) => CliRun.Of(["rlhf", "--device", "cpu", "--model", TestDemoModel.Folder, .. flags]);

    [Theory]
    [InlineData("dpo", "preference.jsonl")]
    [InlineData("dpo", "preference_messages.jsonl")]
    [InlineData("simpo", "preference.jsonl")]
    [InlineData("cpo", "preference.jsonl")]
    [InlineData("orpo", "preference.jsonl")]
    public void PreferenceTrainingRaisesRewardAccuracy(string type, string data)
    {
        using var temp = new TempDirectory();
        var run = Rlhf("--rlhf_type", type, "--dataset", Data(data), "--val_dataset", Data(data), "--max_steps", "30",
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1", "--learning_rate", "1e-2", "--lora_rank", "16",
            "--logging_steps", "5", "--eval_steps", "30", "--save_steps", "30", "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = TrainingLog.ReadJsonl(Path.Combine(temp.Path, "logging.jsonl")).ToList();
        var train = log.Where(r => r.ContainsKey("loss") && r.ContainsKey("rewards/accuracies")).ToList();
        Assert.Equal(6, train.Count);
        foreach (var key in new[] { "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected" })
            Assert.True(train[0].ContainsKey(key), key);
        Assert.True(train[^1]["loss"].GetDouble() < train[0]["loss"].GetDouble(), $"{type}: loss should fall");
        var eval = log.Single(r => r.ContainsKey("eval_loss"));
        Assert.True(eval["eval_rewards/accuracies"].GetDouble() >= 0.9, $"{type}: eval reward accuracy {eval["eval_rewards/accuracies"]}");
        Assert.True(eval["eval_rewards/margins"].GetDouble() > 0);
        var infer = CliRun.Of("infer", "--adapters", Path.Combine(temp.Path, "checkpoint-30"), "--device", "cpu", "--input_ids", "1 2 3", "--max_new_tokens", "2");
        Assert.True(infer.ExitCode == 0, infer.ToString());
    }

    [Theory]
    [InlineData("dpo", "full", "model.safetensors")]
    [InlineData("rm", "lora", "adapter_model.safetensors")]
    [InlineData("kto", "lora", "adapter_model.safetensors")]
    public void PreferenceRunsResumeExactly(string type, string trainType, string weightsFile)
    {
        using var temp = new TempDirectory();
        string[] common = ["--rlhf_type", type, "--train_type", trainType, "--model", CliRun.Fixture("qwen2"), "--dataset", Data(type == "kto" ? "kto.jsonl" : "preference.jsonl"),
            "--max_steps", "4", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--learning_rate", trainType == "full" ? "1e-4" : "1e-2",
            "--logging_steps", "1", "--save_steps", "2", "--add_version", "false", "--output_dir", temp.File("run")];
        var whole = CliRun.Of(["rlhf", "--device", "cpu", .. common]);
        Assert.True(whole.ExitCode == 0, whole.ToString());
        if (type == "dpo") Assert.Contains("reference model loaded", whole.Stderr); // full DPO: a frozen second copy
        List<double> Losses() => TrainingLog.ReadJsonl(temp.File("run/logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToList();
        var losses = Losses();
        var weights = File.ReadAllBytes(temp.File($"run/checkpoint-4/{weightsFile}"));
        Directory.Delete(temp.File("run/checkpoint-4"), true);

        // Resume from step 2 in the same run folder: steps 3-4 must come out the same, bit for bit.
        var resumed = CliRun.Of(["rlhf", "--device", "cpu", .. common, "--resume_from_checkpoint", temp.File("run/checkpoint-2")]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(4, losses.Count);
        Assert.Equal(losses, Losses());
        Assert.Equal(weights, File.ReadAllBytes(temp.File($"run/checkpoint-4/{weightsFile}")));
    }

    [Theory]
    [InlineData("nope", "--rlhf_type")]
    public void UnsupportedTypesGiveOneClearError(string type, string message)
    {
        var run = Rlhf("--rlhf_type", type, "--dataset", Data("preference.jsonl"));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, run.Stderr);
    }

    [Fact]
    public void KtoOnUnpairedLabelledRowsSeparatesDesirableFromUndesirable()
    {
        using var temp = new TempDirectory();
        var run = Rlhf("--rlhf_type", "kto", "--dataset", Data("kto.jsonl"), "--val_dataset", Data("kto.jsonl"), "--max_steps", "30",
            "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--learning_rate", "1e-2", "--lora_rank", "16", "--logging_steps", "5", "--eval_steps", "30", "--save_steps", "30",
            "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = TrainingLog.ReadJsonl(Path.Combine(temp.Path, "logging.jsonl")).ToList();
        var train = log.Where(r => r.ContainsKey("loss") && r.ContainsKey("kl")).ToList();
        Assert.Equal(6, train.Count);
        Assert.True(train[^1]["loss"].GetDouble() < train[0]["loss"].GetDouble());
        var eval = log.Single(r => r.ContainsKey("eval_loss"));
        // Desirable responses gain reward relative to the reference, undesirable ones lose it.
        Assert.True(eval["eval_rewards/chosen"].GetDouble() > 0, eval["eval_rewards/chosen"].ToString());
        Assert.True(eval["eval_rewards/rejected"].GetDouble() < 0, eval["eval_rewards/rejected"].ToString());
        var tooSmall = Rlhf("--rlhf_type", "kto", "--dataset", Data("kto.jsonl"), "--per_device_train_batch_size", "1", "--max_steps", "1");
        Assert.Equal(2, tooSmall.ExitCode);
        Assert.Contains("2 or more", tooSmall.Stderr);
    }

    [Theory]
    [InlineData("lora")]
    [InlineData("full")]
    public void RewardModelRanksHeldOutPairsAndSavesASequenceClassifier(string trainType)
    {
        using var temp = new TempDirectory();
        var run = Rlhf("--rlhf_type", "rm", "--train_type", trainType, "--dataset", Data("preference.jsonl"), "--split_dataset_ratio", "0.3",
            "--max_steps", "30", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--learning_rate", trainType == "lora" ? "1e-2" : "1e-3", "--lora_rank", "16", "--logging_steps", "5", "--eval_steps", "30",
            "--save_steps", "30", "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = TrainingLog.ReadJsonl(Path.Combine(temp.Path, "logging.jsonl")).ToList();
        var train = log.Where(r => r.ContainsKey("loss")).ToList();
        Assert.True(train[^1]["loss"].GetDouble() < train[0]["loss"].GetDouble());
        var eval = log.Single(r => r.ContainsKey("eval_loss"));
        Assert.Equal(1.0, eval["eval_rewards/accuracies"].GetDouble(), 6); // the 3 held-out pairs, ranked right
        var checkpoint = Path.Combine(temp.Path, "checkpoint-30");
        if (trainType == "lora")
        {
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, "adapter_config.json")));
            Assert.Equal("SEQ_CLS", config.RootElement.GetProperty("task_type").GetString());
        }
        else
        {
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")));
            Assert.EndsWith("ForSequenceClassification", config.RootElement.GetProperty("architectures")[0].GetString());
        }
        // osprey infer scores rows with the trained reward model: a chosen answer above "I don't know.".
        var rows = temp.File("rows.jsonl");
        File.WriteAllLines(rows,
        [
            """{"messages": [{"role": "user", "content": "Name the largest planet in the solar system."}, {"role": "assistant", "content": "Jupiter is the largest planet in the solar system."}]}""",
            """{"messages": [{"role": "user", "content": "Name the largest planet in the solar system."}, {"role": "assistant", "content": "I don't know."}]}""",
        ]);
        string[] model = trainType == "lora" ? ["--adapters", checkpoint] : ["--model", checkpoint];
        var infer = CliRun.Of(["infer", .. model, "--val_dataset", rows, "--device", "cpu"]);
        Assert.True(infer.ExitCode == 0, infer.ToString());
        var scores = infer.StdoutLines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("score").GetDouble()).ToArray();
        Assert.Equal(2, scores.Length);
        Assert.True(scores[0] > scores[1], $"{scores[0]} vs {scores[1]}");
    }

    [Fact]
    public void RefAdaptersMakeTheReferenceTheBasePlusThoseAdapters()
    {
        using var temp = new TempDirectory();
        // With a reference unlike the starting policy, DPO's rewards are non-zero from the first step.
        var run = CliRun.Of("rlhf", "--device", "cpu", "--rlhf_type", "dpo", "--model", CliRun.Fixture("qwen2"), "--dataset", Data("preference.jsonl"),
            "--ref_adapters", Path.Combine(TestPaths.Fixtures, "peft", "qwen2-lora"), "--max_steps", "1", "--learning_rate", "1e-9",
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--save_strategy", "no",
            "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("with adapters", run.Stderr);
        var first = TrainingLog.ReadJsonl(Path.Combine(temp.Path, "logging.jsonl")).First(r => r.ContainsKey("loss"));
        Assert.True(Math.Abs(first["rewards/margins"].GetDouble()) > 1e-3, first["rewards/margins"].ToString());
        var bad = CliRun.Of("rlhf", "--device", "cpu", "--rlhf_type", "dpo", "--model", CliRun.Fixture("qwen2"), "--dataset", Data("preference.jsonl"),
            "--ref_adapters", temp.Path);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--ref_adapters", bad.Stderr);
    }

    [Theory]
    [InlineData("lora")]
    [InlineData("full")]
    public void PrecomputedReferenceLogProbsTrainAsTheLiveReference(string trainType)
    {
        // The reference scores are the same numbers whether computed before training or at each step (the reference
        // does not change), so the losses and rewards logged at every step agree.
        List<Dictionary<string, JsonElement>> Train(bool precompute)
        {
            using var temp = new TempDirectory();
            var run = Rlhf("--rlhf_type", "dpo", "--train_type", trainType, "--dataset", Data("preference.jsonl"), "--val_dataset", Data("preference.jsonl"),
                "--max_steps", "4", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--learning_rate", trainType == "lora" ? "1e-2" : "1e-4",
                "--logging_steps", "1", "--eval_steps", "4", "--save_steps", "4", "--output_dir", temp.Path, "--add_version", "false",
                "--precompute_ref_log_probs", precompute ? "true" : "false");
            Assert.True(run.ExitCode == 0, run.ToString());
            if (precompute) Assert.Contains("reference log-probs of", run.Stderr);
            return TrainingLog.ReadJsonl(Path.Combine(temp.Path, "logging.jsonl")).ToList();
        }
        var live = Train(false);
        var pre = Train(true);
        Assert.Equal(live.Count, pre.Count);
        var compared = 0;
        for (var i = 0; i < live.Count; i++)
            foreach (var key in new[] { "loss", "rewards/chosen", "rewards/rejected", "eval_loss", "eval_rewards/margins" })
                if (live[i].TryGetValue(key, out var a))
                {
                    Assert.True(Math.Abs(a.GetDouble() - pre[i][key].GetDouble()) <= 1e-5, $"{trainType} row {i} {key}: {a} vs {pre[i][key]}");
                    compared++;
                }
        Assert.True(compared >= 14, $"compared {compared} values");
    }

    [Fact]
    public void PrecomputingAppliesToDpoOnly() =>
        Assert.Contains("--precompute_ref_log_probs applies to dpo only", Rlhf("--rlhf_type", "kto", "--dataset", Data("kto.jsonl"), "--precompute_ref_log_probs", "true").Stderr);

    [Fact]
    public void RewardModelReadsTheMarginColumn()
    {
        using var temp = new TempDirectory();
        var lines = File.ReadAllLines(Data("preference.jsonl"));
        var withMargin = temp.File("margin.jsonl");
        File.WriteAllLines(withMargin, lines.Select((l, i) => l.TrimEnd().TrimEnd('}') + (i % 2 == 0 ? ", \"margin\": 2.5}" : ", \"margin\": \"1\"}")));
        double FirstLoss(string data, string name)
        {
            var run = Rlhf("--rlhf_type", "rm", "--dataset", data, "--max_steps", "1", "--per_device_train_batch_size", "10",
                "--gradient_accumulation_steps", "1", "--dataset_shuffle", "false", "--logging_steps", "1", "--save_strategy", "no",
                "--output_dir", temp.File(name), "--add_version", "false");
            Assert.True(run.ExitCode == 0, run.ToString());
            return TrainingLog.ReadJsonl(temp.File(name + "/logging.jsonl")).First(r => r.ContainsKey("loss"))["loss"].GetDouble();
        }
        // −log σ(r_c − r_r − m) grows with the margin m: the same model and rows cost more with margins.
        Assert.True(FirstLoss(withMargin, "m") > FirstLoss(Data("preference.jsonl"), "plain") + 0.1);
        File.WriteAllText(temp.File("bad.jsonl"), lines[0].TrimEnd().TrimEnd('}') + ", \"margin\": [1]}\n");
        var bad = Rlhf("--rlhf_type", "rm", "--dataset", temp.File("bad.jsonl"), "--max_steps", "1");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("margin", bad.Stderr);
        Assert.Contains("line 1", bad.Stderr);
    }

    [Fact]
    public void RowsWithoutARejectedResponseAreRefusedWithTheirLine()
    {
        var run = Rlhf("--rlhf_type", "dpo", "--dataset", Data("messages.jsonl"), "--max_steps", "1");
        Assert.Equal(2, run.ExitCode);
        Assert.Matches(@"messages\.jsonl line \d+: the row has no rejected response", run.Stderr);
        Assert.Contains("rejected", run.Stderr);
    }
}
