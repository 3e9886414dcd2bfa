using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Osprey.Tests.Cli.Commands;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Grpo;

/// <summary>
/// <c>osprey rlhf --rlhf_type grpo</c> end to end on the CPU with the tiny demo model: it learns a toy reward (a
/// plugin loaded with --external_plugins) within a bounded number of steps and logs the GRPO metrics and completions;
/// a resumed run (LoRA and full, a checkpoint inside a reused generation batch) continues bit-identically; the built-in
/// math rewards see the dataset's solution column; --reward_url posts to a real Kestrel server on 127.0.0.1; --reward_model
/// scores each prompt with its completion.
/// </summary>
public sealed class GrpoCommandTests
{
    static string Plugin => typeof(LowercaseReward).Assembly.Location;

    static void WritePrompts(string path, int count)
    {
        using var w = new StreamWriter(path);
        for (var i = 0; i < count; i++)
            w.WriteLine(new JsonObject
            {
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = $"What is {i} + {i}?" }),
                ["solution"] = $"\\boxed{{{2 * i}}}",
            }.ToJsonString());
    }

    static CliRun Grpo(params string[] flags) => CliRun.Of(["rlhf", "--rlhf_type", "grpo", "--device", "cpu", "--add_version", "false", .. flags]);

    [Fact]
    public void TheDemoModelLearnsAToyReward()
    {
        using var temp = new TempDirectory();
        WritePrompts(temp.File("prompts.jsonl"), 4);
        var run = Grpo("--model", TestDemoModel.Folder, "--dataset", temp.File("prompts.jsonl"), "--external_plugins", Plugin, "--reward_funcs", "lowercase",
            "--num_generations", "8", "--max_completion_length", "4", "--temperature", "1.0", "--top_p", "1.0", "--top_k", "0",
            "--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "1", "--max_steps", "24", "--learning_rate", "3e-2", "--lora_rank", "16",
            "--logging_steps", "1", "--save_steps", "100", "--log_completions", "true", "--output_dir", temp.File("run"));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("rollouts run on the in-process serving engine", run.Stderr);
        var steps = TrainingLog.ReadJsonl(temp.File("run/logging.jsonl")).Where(r => r.ContainsKey("loss")).ToList();
        Assert.Equal(24, steps.Count);
        foreach (var key in new[] { "reward", "reward_std", "rewards/lowercase/mean", "rewards/lowercase/std", "kl", "entropy", "clip_ratio/region_mean",
                     "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio", "time/rollout_seconds" })
            Assert.True(steps[0].ContainsKey(key), key);
        double Mean(IEnumerable<Dictionary<string, JsonElement>> s) => s.Average(r => r["reward"].GetDouble());
        var first = Mean(steps.Take(4));
        var last = Mean(steps.TakeLast(4));
        // About 26 of the demo vocabulary's 253 printable characters are lowercase letters, so a random policy scores near 0.1.
        Assert.True(first < 0.3, $"the untrained policy already scores {first}");
        Assert.True(last > first + 0.25, $"the reward rose only from {first:F3} to {last:F3}");
        var completions = File.ReadAllLines(temp.File("run/completions.jsonl"));
        Assert.Equal(24 * 16, completions.Length);
        var line = JsonNode.Parse(completions[0])!;
        Assert.NotNull(line["rewards"]!["lowercase"]);
        Assert.NotNull(line["advantage"]);
    }

    [Theory]
    [InlineData("lora", "adapter_model.safetensors")]
    [InlineData("full", "model.safetensors")]
    public void AResumedRunContinuesBitIdentically(string trainType, string weightsFile)
    {
        using var temp = new TempDirectory();
        WritePrompts(temp.File("prompts.jsonl"), 3);
        // A generation batch of 8 completions feeds 2 micro-batches twice (num_iterations 2): steps 1-4 use one batch, so
        // the checkpoint at step 2 sits inside it and must carry it.
        string[] common = ["--model", TestDemoModel.Folder, "--train_type", trainType, "--dataset", temp.File("prompts.jsonl"), "--external_plugins", Plugin,
            "--reward_funcs", "lowercase", "repetition", "--reward_weights", "1", "0.5", "--num_generations", "4", "--max_completion_length", "4",
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1", "--steps_per_generation", "2", "--num_iterations", "2",
            "--max_steps", "6", "--learning_rate", trainType == "full" ? "1e-3" : "1e-2", "--logging_steps", "1", "--save_steps", "2", "--output_dir", temp.File("run")];
        var whole = Grpo(common);
        Assert.True(whole.ExitCode == 0, whole.ToString());
        if (trainType == "full") Assert.Contains("GRPO reference model loaded", whole.Stderr);
        List<string> Records() => TrainingLog.ReadJsonl(temp.File("run/logging.jsonl")).Where(r => r.ContainsKey("loss"))
            .Select(r => $"{r["global_step"]} {r["loss"]} {r["reward"]} {r["kl"]} {r["grad_norm"]}").ToList();
        var records = Records();
        Assert.Equal(6, records.Count);
        var weights = File.ReadAllBytes(temp.File($"run/checkpoint-6/{weightsFile}"));
        Directory.Delete(temp.File("run/checkpoint-6"), true);
        Directory.Delete(temp.File("run/checkpoint-4"), true);

        var resumed = Grpo([.. common, "--resume_from_checkpoint", temp.File("run/checkpoint-2")]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(records, Records());
        Assert.Equal(weights, File.ReadAllBytes(temp.File($"run/checkpoint-6/{weightsFile}")));
    }

    [Fact]
    public async Task RewardUrlPostsCompletionsWithTheRowsColumns()
    {
        using var temp = new TempDirectory();
        WritePrompts(temp.File("prompts.jsonl"), 2);
        var bodies = new ConcurrentQueue<JsonObject>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.MapPost("/reward", async (HttpContext context) =>
        {
            var body = (await JsonNode.ParseAsync(context.Request.Body))!.AsObject();
            bodies.Enqueue(body);
            // Reward = completion length in characters, so the log can be checked against completions.jsonl.
            var rewards = body["completions"]!.AsArray().Select(c => (JsonNode?)c!.GetValue<string>().Length).ToArray();
            await context.Response.WriteAsync(new JsonObject { ["rewards"] = new JsonArray(rewards) }.ToJsonString());
        });
        await app.StartAsync();
        try
        {
            var run = Grpo("--model", TestDemoModel.Folder, "--dataset", temp.File("prompts.jsonl"), "--reward_url", app.Urls.Single() + "/reward",
                "--reward_funcs", "accuracy", "format", "--num_generations", "4", "--max_completion_length", "3", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
                "--max_steps", "1", "--logging_steps", "1", "--log_completions", "true", "--output_dir", temp.File("run"));
            Assert.True(run.ExitCode == 0, run.ToString());
        }
        finally
        {
            await app.StopAsync();
        }
        var sent = Assert.Single(bodies);
        Assert.Equal(8, sent["completions"]!.AsArray().Count);
        var solutions = sent["solution"]!.AsArray().Select(s => s!.GetValue<string>()).ToList();
        Assert.Equal(8, solutions.Count);
        Assert.All(solutions, s => Assert.StartsWith("\\boxed{", s));
        Assert.Equal(8, sent["messages"]!.AsArray().Count);
        var lines = File.ReadAllLines(temp.File("run/completions.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        foreach (var l in lines)
        {
            Assert.Equal(l["completion"]!.GetValue<string>().Length, l["rewards"]!["reward_url"]!.GetValue<double>());
            Assert.Equal(0.0, l["rewards"]!["format"]!.GetValue<double>());
        }
        var step = TrainingLog.ReadJsonl(temp.File("run/logging.jsonl")).First(r => r.ContainsKey("loss"));
        Assert.Equal(lines.Average(l => l["completion"]!.GetValue<string>().Length), step["rewards/reward_url/mean"].GetDouble(), 9);
        Assert.True(step.ContainsKey("rewards/accuracy/mean"));
    }

    [Fact]
    public void ARewardModelScoresEachPromptWithItsCompletion()
    {
        using var temp = new TempDirectory();
        var rm = CliRun.Of("rlhf", "--rlhf_type", "rm", "--device", "cpu", "--add_version", "false", "--model", TestDemoModel.Folder, "--train_type", "full",
            "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "preference.jsonl"), "--max_steps", "2", "--per_device_train_batch_size", "2",
            "--gradient_accumulation_steps", "1", "--learning_rate", "1e-3", "--save_steps", "2", "--output_dir", temp.File("rm"));
        Assert.True(rm.ExitCode == 0, rm.ToString());
        WritePrompts(temp.File("prompts.jsonl"), 2);
        var run = Grpo("--model", TestDemoModel.Folder, "--dataset", temp.File("prompts.jsonl"), "--reward_model", temp.File("rm/checkpoint-2"),
            "--num_generations", "4", "--max_completion_length", "4", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
            "--max_steps", "1", "--logging_steps", "1", "--log_completions", "true", "--output_dir", temp.File("run"));
        Assert.True(run.ExitCode == 0, run.ToString());
        // Each completion's reward is the reward model's score of its own prompt followed by it as the assistant turn.
        var folder = temp.File("rm/checkpoint-2");
        using var model = Osprey.Models.CausalLM.Load(folder, TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
        var chat = Osprey.Inference.ChatPrompt.Create(Osprey.Inference.ChatPrompt.LoadTokenizer(folder, "rm"), folder, null);
        var lines = File.ReadAllLines(temp.File("run/completions.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(8, lines.Count);
        var scores = new List<double>();
        foreach (var l in lines)
        {
            var messages = l["prompt"]!.AsArray().Select(m => Osprey.Inference.InferenceDataset.Message(m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>()))
                .Append(Osprey.Inference.InferenceDataset.Message("assistant", l["completion"]!.GetValue<string>())).ToList();
            var ids = chat.EncodeRendered(chat.Tokenizer.ApplyChatTemplate(messages, new Osprey.Tokenization.ChatTemplateOptions { AddGenerationPrompt = false }));
            var score = (double)Osprey.Inference.TokenIdInference.Score(model, ids)[0];
            Assert.Equal(score, l["rewards"]!["reward_model"]!.GetValue<double>(), 4);
            scores.Add(score);
        }
        Assert.True(scores.Distinct().Count() > 1, "every completion got the same score: the reward model saw nothing of them");
        var step = TrainingLog.ReadJsonl(temp.File("run/logging.jsonl")).First(r => r.ContainsKey("loss"));
        Assert.Equal(scores.Average(), step["rewards/reward_model/mean"].GetDouble(), 4);
    }

    [Theory]
    [InlineData(new[] { "--reward_funcs", "nope" }, "--reward_funcs nope is not a reward")]
    [InlineData(new[] { "--num_generations", "3", "--reward_funcs", "format" }, "must be a multiple of --num_generations 3")]
    [InlineData(new string[0], "needs a reward")]
    [InlineData(new[] { "--reward_funcs", "format", "--loss_type", "sigmoid" }, "--loss_type for grpo must be one of")]
    [InlineData(new[] { "--reward_funcs", "format", "--reward_weights", "1", "2" }, "--reward_weights has 2 values for 1 rewards")]
    [InlineData(new[] { "--reward_funcs", "format", "--vllm_gpu_memory_utilization", "1.5" }, "--rollout_memory_fraction must be in (0, 1] (got 1.5)")]
    public void BadSettingsGiveOneClearError(string[] flags, string message)
    {
        using var temp = new TempDirectory();
        WritePrompts(temp.File("prompts.jsonl"), 2);
        var run = Grpo(["--model", TestDemoModel.Folder, "--dataset", temp.File("prompts.jsonl"), "--max_steps", "1", "--output_dir", temp.File("run"), .. flags]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(message, run.Stderr);
    }
}
