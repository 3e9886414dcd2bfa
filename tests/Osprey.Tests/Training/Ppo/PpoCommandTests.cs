using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Training.Grpo;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Ppo;

/// <summary>
/// <c>osprey rlhf --rlhf_type ppo</c> end to end on the CPU with the tiny demo model: with a reward model trained in the
/// test (<c>--rlhf_type rm</c>, full) it logs finite PPO metrics and writes a checkpoint with the value model; with a
/// plugin reward, a run resumed from a checkpoint inside a rollout batch continues bit-identically.
/// </summary>
public sealed class PpoCommandTests
{
    static string Plugin => typeof(LowercaseReward).Assembly.Location;

    static void WritePrompts(string path, int count)
    {
        using var w = new StreamWriter(path);
        for (var i = 0; i < count; i++)
            w.WriteLine(new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = $"Say {i}." }) }.ToJsonString());
    }

    static CliRun Rlhf(params string[] flags) => CliRun.Of(["rlhf", "--device", "cpu", "--add_version", "false", "--model", TestDemoModel.Folder, .. flags]);

    [Fact]
    public void ARewardModelRunLogsFiniteMetricsAndSavesTheValueModel()
    {
        using var temp = new TempDirectory();
        var rm = Rlhf("--rlhf_type", "rm", "--train_type", "full", "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "preference.jsonl"),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--learning_rate", "1e-3",
            "--save_steps", "2", "--output_dir", temp.File("rm"));
        Assert.True(rm.ExitCode == 0, rm.ToString());
        WritePrompts(temp.File("prompts.jsonl"), 4);
        var run = Rlhf("--rlhf_type", "ppo", "--dataset", temp.File("prompts.jsonl"), "--reward_model", temp.File("rm/checkpoint-2"),
            "--max_completion_length", "4", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--num_ppo_epochs", "2", "--num_mini_batches", "2", "--missing_eos_penalty", "1.0", "--max_steps", "4", "--learning_rate", "1e-2",
            "--logging_steps", "1", "--save_steps", "4", "--output_dir", temp.File("run"));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("value model (from the reward model)", run.Stderr);
        Assert.Contains("rollouts run on the in-process serving engine", run.Stderr);
        var steps = TrainingLog.ReadJsonl(temp.File("run/logging.jsonl")).Where(r => r.ContainsKey("loss")).ToList();
        Assert.Equal(4, steps.Count);
        foreach (var key in new[] { "loss", "reward", "kl", "objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward",
                     "loss/policy_avg", "loss/value_avg", "policy/clipfrac_avg", "val/clipfrac_avg", "policy/approxkl_avg", "policy/entropy_avg", "val/ratio",
                     "rewards/reward_model/mean", "completions/mean_length" })
            foreach (var s in steps)
                Assert.True(s.TryGetValue(key, out var v) && v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()), $"{key} in step {s["global_step"]}");
        // The first step of a rollout batch runs on the policy that sampled it: its ratio is 1 and nothing is clipped.
        Assert.Equal(1.0, steps[0]["val/ratio"].GetDouble(), 4);
        Assert.Equal(0.0, steps[0]["policy/clipfrac_avg"].GetDouble());
        var checkpoint = temp.File("run/checkpoint-4");
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(checkpoint, "value_model", "model.safetensors")));
        Assert.Contains("ForSequenceClassification", File.ReadAllText(Path.Combine(checkpoint, "value_model", "config.json")));
    }

    [Fact]
    public void AResumedRunContinuesBitIdentically()
    {
        using var temp = new TempDirectory();
        WritePrompts(temp.File("prompts.jsonl"), 5);
        // Rollout batches of 4 feed 2 steps each (num_ppo_epochs 2): the checkpoint at step 3 sits inside the second batch.
        string[] common = ["--rlhf_type", "ppo", "--dataset", temp.File("prompts.jsonl"), "--external_plugins", Plugin, "--reward_funcs", "lowercase",
            "--max_completion_length", "4", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--num_ppo_epochs", "2",
            "--whiten_rewards", "true", "--max_steps", "6", "--learning_rate", "1e-2", "--logging_steps", "1", "--save_steps", "3", "--output_dir", temp.File("run")];
        var whole = Rlhf(common);
        Assert.True(whole.ExitCode == 0, whole.ToString());
        Assert.Contains("base model with a new score head", whole.Stderr);
        List<string> Records() => TrainingLog.ReadJsonl(temp.File("run/logging.jsonl")).Where(r => r.ContainsKey("loss"))
            .Select(r => $"{r["global_step"]} {r["loss"]} {r["reward"]} {r["kl"]} {r["loss/value_avg"]} {r["grad_norm"]}").ToList();
        var records = Records();
        Assert.Equal(6, records.Count);
        var weights = File.ReadAllBytes(temp.File("run/checkpoint-6/adapter_model.safetensors"));
        var values = File.ReadAllBytes(temp.File("run/checkpoint-6/value_model/model.safetensors"));
        Directory.Delete(temp.File("run/checkpoint-6"), true);

        var resumed = Rlhf([.. common, "--resume_from_checkpoint", temp.File("run/checkpoint-3")]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(records, Records());
        Assert.Equal(weights, File.ReadAllBytes(temp.File("run/checkpoint-6/adapter_model.safetensors")));
        Assert.Equal(values, File.ReadAllBytes(temp.File("run/checkpoint-6/value_model/model.safetensors")));
    }

    [Theory]
    [InlineData(new[] { "--max_steps", "1" }, "--rlhf_type ppo needs a reward")]
    [InlineData(new[] { "--reward_funcs", "format", "--num_ppo_epochs", "0" }, "--num_ppo_epochs must be 1 or more")]
    [InlineData(new[] { "--reward_funcs", "format", "--lam", "1.5" }, "--lam must be in [0, 1]")]
    public void BadSettingsGiveOneClearError(string[] flags, string message)
    {
        using var temp = new TempDirectory();
        WritePrompts(temp.File("prompts.jsonl"), 2);
        var run = Rlhf(["--rlhf_type", "ppo", "--dataset", temp.File("prompts.jsonl"), "--output_dir", temp.File("run"), .. flags]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, run.Stderr);
    }
}
