using System.Text;
using System.Text.Json.Nodes;
using Osprey.Tests.Cli.Commands;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// Benchmarks during training (<c>--eval_dataset</c> on sft and rlhf) against <c>osprey eval</c> run afterwards on
/// the checkpoint saved at the same step: a different path to the same weights (the adapter written to disk, read
/// back and merged into a freshly loaded base) must give the same per-item log-likelihoods, choices and scores as the
/// in-process evaluation of the live LoRA model. The training losses must equal those of the same run without the
/// benchmarks, so the evaluation leaves training mode, gradients and randomness as they were.
/// </summary>
public sealed class TrainingEvaluationTests
{
    static string Qwen2 => CliRun.Fixture("qwen2");
    static string Mcq => Path.Combine(TestPaths.RepoRoot, "examples", "eval", "mcq");
    static string McqArgs => new JsonObject { ["general_mcq"] = new JsonObject { ["local_path"] = Mcq } }.ToJsonString();

    static string[] Sft(string output, bool benchmarks) =>
    [
        "sft", "--model", Qwen2, "--device", "cpu", "--load_from_cache_file", "false",
        "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl"), "--split_dataset_ratio", "0",
        "--max_steps", "4", "--logging_steps", "1", "--save_steps", "2", "--eval_steps", "2", "--per_device_train_batch_size", "2",
        "--gradient_accumulation_steps", "1", "--learning_rate", "5e-2", "--lora_rank", "8", "--lora_dropout", "0.1",
        "--output_dir", output, "--add_version", "false",
        .. (benchmarks ? new[] { "--eval_dataset", "general_mcq", "--eval_dataset_args", McqArgs, "--eval_limit", "2", "--metric_for_best_model", "general_mcq" } : []),
    ];

    static List<JsonObject> Records(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void Sft_ScoresAtEachEvalStep_EqualOspreyEvalOfThatStepsCheckpoint()
    {
        using var temp = new TempDirectory();
        var run = CliRun.Of(Sft(temp.File("run"), benchmarks: true));
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = Records(Path.Combine(temp.File("run"), "logging.jsonl"));
        var logged = log.Where(r => r["eval_general_mcq"] is not null).ToDictionary(r => (long)r["global_step"]!, r => (double)r["eval_general_mcq"]!);
        Assert.Equal(new long[] { 2, 4 }, logged.Keys.Order().ToArray());

        var itemLls = new Dictionary<long, double[]>();
        foreach (var step in new long[] { 2, 4 })
        {
            var checkpoint = Path.Combine(temp.File("run"), $"checkpoint-{step}");
            var eval = CliRun.Of("eval", "--model", Qwen2, "--adapters", checkpoint, "--device", "cpu", "--eval_dataset", "general_mcq",
                "--dataset_args", McqArgs, "--eval_limit", "2", "--eval_output_dir", temp.File($"eval-{step}"));
            Assert.True(eval.ExitCode == 0, eval.ToString());
            var overall = JsonNode.Parse(File.ReadAllText(temp.File($"eval-{step}/report.json")))!["rows"]!.AsArray()
                .Single(r => (string)r!["level"]! == "overall" && (string)r!["metric"]! == "acc")!;
            Assert.Equal((double)overall["score"]!, logged[step], 4);

            // Item by item: the same prompts, log-likelihoods within float32 merge noise, the same choices.
            var during = Records(Path.Combine(temp.File("run"), "eval", $"step-{step}", "predictions.jsonl")).ToDictionary(r => (string)r["key"]!);
            var after = Records(temp.File($"eval-{step}/predictions.jsonl"));
            Assert.Equal(4, after.Count);
            foreach (var a in after)
            {
                var d = during[(string)a["key"]!];
                Assert.Equal((string)a["prompt"]!, (string)d["prompt"]!);
                Assert.Equal((string)a["prediction"]!, (string)d["prediction"]!);
                var la = a["loglikelihoods"]!.AsArray().Select(v => (double)v!).ToArray();
                var ld = d["loglikelihoods"]!.AsArray().Select(v => (double)v!).ToArray();
                for (var i = 0; i < la.Length; i++) Assert.True(Math.Abs(la[i] - ld[i]) < 1e-3, $"step {step} {a["key"]} option {i}: {ld[i]} during training, {la[i]} from the checkpoint");
            }
            itemLls[step] = after.SelectMany(a => a["loglikelihoods"]!.AsArray().Select(v => (double)v!)).ToArray();
        }
        // The weights moved between the two evaluations (so each really saw its own step's weights).
        Assert.True(itemLls[2].Zip(itemLls[4]).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "the log-likelihoods at steps 2 and 4 should differ");

        // TensorBoard and the curves carry the score; the best checkpoint is the one with the highest score (first on ties).
        var events = Directory.GetFiles(Path.Combine(temp.File("run"), "runs"), "events.out.tfevents*", SearchOption.AllDirectories).Single();
        Assert.Contains("eval/general_mcq", Encoding.Latin1.GetString(File.ReadAllBytes(events)));
        Assert.True(File.Exists(Path.Combine(temp.File("run"), "images", "eval_general_mcq.png")));
        var best = logged[4] > logged[2] ? 4 : 2;
        var summary = log.Last(r => r["best_model_checkpoint"] is not null);
        Assert.Equal(Path.Combine(temp.File("run"), $"checkpoint-{best}"), (string)summary["best_model_checkpoint"]!);
        Assert.Equal(logged[best], (double)summary["best_metric"]!, 12);

        // The same run without benchmarks trains identically: the evaluation restored training mode and left no gradients.
        var plain = CliRun.Of(Sft(temp.File("plain"), benchmarks: false));
        Assert.True(plain.ExitCode == 0, plain.ToString());
        double[] Losses(string dir) => Records(Path.Combine(dir, "logging.jsonl")).Where(r => r["loss"] is not null).Select(r => (double)r["loss"]!).ToArray();
        Assert.Equal(Losses(temp.File("plain")), Losses(temp.File("run")));
    }

    [Fact]
    public void Rlhf_LogsBenchmarkScoresAtItsEvalSteps()
    {
        using var temp = new TempDirectory();
        var run = CliRun.Of("rlhf", "--rlhf_type", "dpo", "--model", Qwen2, "--device", "cpu", "--load_from_cache_file", "false",
            "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "preference.jsonl"), "--split_dataset_ratio", "0",
            "--max_steps", "2", "--logging_steps", "1", "--save_steps", "2", "--eval_steps", "1", "--per_device_train_batch_size", "1",
            "--gradient_accumulation_steps", "1", "--output_dir", temp.File("run"), "--add_version", "false",
            "--eval_use_evalscope", "true", "--eval_dataset", "general_mcq", "--eval_dataset_args", McqArgs, "--eval_limit", "1");
        Assert.True(run.ExitCode == 0, run.ToString());
        var steps = Records(Path.Combine(temp.File("run"), "logging.jsonl")).Where(r => r["eval_general_mcq"] is not null).Select(r => (long)r["global_step"]!).ToList();
        Assert.Equal(new long[] { 1, 2 }, steps);
        Assert.True(File.Exists(Path.Combine(temp.File("run"), "eval", "step-2", "report.json")));
    }

    [Theory]
    [InlineData("--eval_use_evalscope", "true", "needs --eval_dataset")]
    [InlineData("--eval_limit", "0", "--eval_limit must be at least 1")]
    public void BadBenchmarkFlags_AreOneSentence(string flag, string value, string expected)
    {
        var run = CliRun.Of("sft", "--model", Qwen2, "--device", "cpu", "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl"), flag, value);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(expected, run.Stderr);
    }
}
