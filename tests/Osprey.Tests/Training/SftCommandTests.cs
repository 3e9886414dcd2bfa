using System.Text.Json;
using Osprey.Io;
using Osprey.Tests.Cli.Commands;
using Osprey.Training.Reporting;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// <c>osprey sft</c> / <c>pt</c> end to end on the CPU with tiny fixture models: a LoRA adapter memorises a small set
/// and answers it through <c>osprey infer --adapters</c>; resuming from a checkpoint gives bit-identical losses and
/// weights (LoRA with dropout and gradient accumulation, and full training); the merged model equals adapter-on-base;
/// the run folder has ms-swift's layout.
/// </summary>
public sealed class SftCommandTests
{
    static string Memorize => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl");

    static CliRun Sft(params string[] flags) => CliRun.Of(["sft", "--device", "cpu", "--load_from_cache_file", "false", .. flags]);

    static List<Dictionary<string, JsonElement>> Log(string run) => TrainingLog.ReadJsonl(Path.Combine(run, "logging.jsonl")).ToList();

    static double[] Losses(string run) => Log(run).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();

    static Dictionary<string, float[]> Tensors(string file)
    {
        using var f = SafetensorsFile.Open(file);
        var result = new Dictionary<string, float[]>();
        foreach (var e in f.Entries)
        {
            using var t = f.ReadTensor(e.Name);
            result[e.Name] = t.to_type(ScalarType.Float32).data<float>().ToArray();
        }
        return result;
    }

    [Fact]
    public void LoraMemorisesAndTheAdapterAnswersThroughInfer()
    {
        using var temp = new TempDirectory();
        var run = Sft("--model", TestDemoModel.Folder, "--dataset", Memorize, "--num_train_epochs", "100", "--per_device_train_batch_size", "4",
            "--learning_rate", "1e-2", "--lora_rank", "16", "--output_dir", temp.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        var runDir = Directory.GetDirectories(temp.Path).Single();
        Assert.Matches(@"^v0-\d{8}-\d{6}$", Path.GetFileName(runDir));
        var losses = Losses(runDir);
        Assert.True(losses[^1] < losses[0] / 10, $"loss should fall tenfold: {string.Join(", ", losses)}");
        var checkpoint = Path.Combine(runDir, "checkpoint-100");
        Assert.Contains($"last_model_checkpoint: {checkpoint}", run.Stdout);

        var answers = temp.File("answers.jsonl");
        var infer = CliRun.Of("infer", "--adapters", checkpoint, "--val_dataset", Memorize, "--result_path", answers, "--device", "cpu");
        Assert.True(infer.ExitCode == 0, infer.ToString());
        foreach (var line in File.ReadAllLines(answers))
        {
            using var doc = JsonDocument.Parse(line);
            var expected = doc.RootElement.GetProperty("messages")[1].GetProperty("content").GetString();
            Assert.Equal(expected, doc.RootElement.GetProperty("response").GetString());
        }
    }

    [Fact]
    public void RunFolderHasTheMsSwiftLayout()
    {
        using var temp = new TempDirectory();
        var run = Sft("--model", CliRun.Fixture("qwen2"), "--dataset", Memorize, "--val_dataset", Memorize, "--max_steps", "6",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--logging_steps", "2", "--save_steps", "2",
            "--save_total_limit", "1", "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        foreach (var name in new[] { "args.json", "logging.jsonl", "images/train_loss.png", "images/train_learning_rate.png", "images/train_grad_norm.png", "images/eval_loss.png" })
            Assert.True(File.Exists(Path.Combine(temp.Path, name)), name);
        Assert.Single(Directory.GetFiles(Path.Combine(temp.Path, "runs"), "events.out.tfevents.*"));
        var log = Log(temp.Path);
        var train = log.Where(r => r.ContainsKey("loss")).ToList();
        Assert.Equal([2L, 4L, 6L], train.Select(r => r["global_step"].GetInt64()));
        foreach (var key in new[] { "grad_norm", "learning_rate", "token_acc", "epoch", "tokens_per_second", "memory_gib" }) Assert.True(train[0].ContainsKey(key), key);
        Assert.Equal(3, log.Count(r => r.ContainsKey("eval_loss")));
        var final = log[^1];
        var best = final["best_model_checkpoint"].GetString()!;
        var last = final["last_model_checkpoint"].GetString()!;
        Assert.Equal(Path.Combine(temp.Path, "checkpoint-6"), last);
        // save_total_limit 1 keeps the newest checkpoint and the best one.
        var kept = Directory.GetDirectories(temp.Path, "checkpoint-*").Order().ToArray();
        Assert.Equal(new[] { best, last }.Distinct().Order(), kept);
        foreach (var name in new[] { "adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "trainer_state.json", "scheduler.json", "rng_state.json", "tokenizer.json", "args.json" })
            Assert.True(File.Exists(Path.Combine(last, name)), name);
        using var args = JsonDocument.Parse(File.ReadAllText(Path.Combine(temp.Path, "args.json")));
        Assert.Equal(CliRun.Fixture("qwen2"), args.RootElement.GetProperty("model").GetString());
    }

    [Theory]
    [InlineData("lora")]
    [InlineData("full")]
    public void ResumingFromACheckpointIsBitIdentical(string trainType)
    {
        using var temp = new TempDirectory();
        string[] common = ["--model", CliRun.Fixture("qwen2"), "--dataset", Memorize, "--max_steps", "6", "--per_device_train_batch_size", "1",
            "--gradient_accumulation_steps", "2", "--logging_steps", "1", "--save_steps", "3", "--train_type", trainType,
            "--learning_rate", trainType == "lora" ? "1e-2" : "1e-3", "--warmup_ratio", "0.3", "--add_version", "false"];
        var whole = Sft([.. common, "--output_dir", temp.File("whole")]);
        Assert.True(whole.ExitCode == 0, whole.ToString());
        // The same run stopped at step 3: its checkpoint-3, resumed.
        var half = Sft([.. common, "--output_dir", temp.File("half"), "--max_steps", "6"]);
        Assert.True(half.ExitCode == 0, half.ToString());
        Directory.Delete(temp.File("half/checkpoint-6"), true);
        var resumed = Sft([.. common, "--output_dir", temp.File("ignored"), "--resume_from_checkpoint", temp.File("half/checkpoint-3")]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Contains("resuming", resumed.Stderr);
        Assert.Equal(Losses(temp.File("whole")), Losses(temp.File("half")));
        var weights = trainType == "lora" ? "adapter_model.safetensors" : "model.safetensors";
        var a = Tensors(Path.Combine(temp.File("whole/checkpoint-6"), weights));
        var b = Tensors(Path.Combine(temp.File("half/checkpoint-6"), weights));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, values) in a) Assert.True(values.SequenceEqual(b[name]), $"{name} differs after resuming");
    }

    [Fact]
    public void MergedModelEqualsAdapterOnBase()
    {
        using var temp = new TempDirectory();
        var run = Sft("--model", CliRun.Fixture("llama"), "--dataset", Memorize, "--max_steps", "5", "--learning_rate", "1e-2",
            "--gradient_accumulation_steps", "1", "--use_dora", "true", "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        var checkpoint = temp.File("checkpoint-5");
        var export = CliRun.Of("export", "--adapters", checkpoint, "--merge_lora", "true");
        Assert.True(export.ExitCode == 0, export.ToString());
        Assert.True(File.Exists(Path.Combine(checkpoint + "-merged", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(checkpoint + "-merged", "tokenizer.json")));
        const string ids = "5 17 42 99 100 3 8;9 8 7 6 5 4 3";
        var adapter = CliRun.Of("infer", "--adapters", checkpoint, "--input_ids", ids, "--save_logits", temp.File("a.st"), "--device", "cpu");
        var merged = CliRun.Of("infer", "--model", checkpoint + "-merged", "--input_ids", ids, "--save_logits", temp.File("m.st"), "--device", "cpu");
        var plain = CliRun.Of("infer", "--model", CliRun.Fixture("llama"), "--input_ids", ids, "--save_logits", temp.File("b.st"), "--device", "cpu");
        Assert.True(adapter.ExitCode == 0 && merged.ExitCode == 0 && plain.ExitCode == 0, adapter + "\n" + merged + "\n" + plain);
        var la = Tensors(temp.File("a.st"))["logits"];
        var lm = Tensors(temp.File("m.st"))["logits"];
        var lb = Tensors(temp.File("b.st"))["logits"];
        Assert.True(la.Zip(lm).Max(p => Math.Abs(p.First - p.Second)) < 1e-5);
        Assert.True(la.Zip(lb).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "training must have changed the model");
        var mergeLora = CliRun.Of("merge-lora", "--adapters", checkpoint, "--output_dir", temp.File("m2"));
        Assert.True(mergeLora.ExitCode == 0, mergeLora.ToString());
        Assert.Equal(Tensors(Path.Combine(checkpoint + "-merged", "model.safetensors"))["model.norm.weight"], Tensors(temp.File("m2/model.safetensors"))["model.norm.weight"]);
    }

    [Fact]
    public void Bfloat16LoraTrainsWithFloat32MastersAndSavesThem()
    {
        using var temp = new TempDirectory();
        var run = Sft("--model", CliRun.Fixture("qwen2"), "--dataset", Memorize, "--max_steps", "20", "--torch_dtype", "bfloat16",
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1", "--learning_rate", "1e-2", "--logging_steps", "5",
            "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("in bfloat16", run.Stderr);
        var losses = Losses(temp.Path);
        Assert.True(losses[^1] < losses[0] * 0.7, string.Join(", ", losses));
        using var adapter = SafetensorsFile.Open(Path.Combine(temp.Path, "checkpoint-20", "adapter_model.safetensors"));
        Assert.All(adapter.Entries, e => Assert.Equal("F32", e.DType));
        // Masters carry more than bf16 precision: some value is not exactly a bf16 number.
        using var b = adapter.ReadTensor(adapter.Entries.First(e => e.Name.EndsWith("lora_B.weight", StringComparison.Ordinal)).Name);
        using var rounded = b.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32);
        Assert.True((b - rounded).abs().max().ToSingle() > 0);
    }

    [Fact]
    public void FreezeParametersKeepsThoseWeightsInFullTraining()
    {
        using var temp = new TempDirectory();
        var run = Sft("--model", CliRun.Fixture("qwen2"), "--dataset", Memorize, "--max_steps", "3", "--train_type", "full",
            "--freeze_parameters", "model.layers.0.", "model.embed_tokens", "--trainable_parameters", "model.layers.0.mlp.down_proj",
            "--learning_rate", "1e-3", "--gradient_accumulation_steps", "1", "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        var before = Tensors(Path.Combine(CliRun.Fixture("qwen2"), "model.safetensors"));
        var after = Tensors(Path.Combine(temp.Path, "checkpoint-3", "model.safetensors"));
        Assert.Equal(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"]);
        Assert.Equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"]);
        Assert.NotEqual(before["model.layers.0.mlp.down_proj.weight"], after["model.layers.0.mlp.down_proj.weight"]);
        Assert.NotEqual(before["model.layers.1.self_attn.q_proj.weight"], after["model.layers.1.self_attn.q_proj.weight"]);
    }

    [Fact]
    public void PeftAdapterFromElsewhereRunsThroughInferWithSeveralAdapters()
    {
        using var temp = new TempDirectory();
        var peft = Path.Combine(TestPaths.Fixtures, "peft");
        var ids = "5 17 42 99 100 3 8 200 31 64 77 12;9 8 7 6 5 4 3 120 121 122 123 124";
        using (var f = SafetensorsFile.Open(Path.Combine(peft, "qwen2-lora", "expected.safetensors")))
        using (var t = f.ReadTensor("input_ids"))
            ids = string.Join(";", Enumerable.Range(0, (int)t.shape[0]).Select(r => string.Join(" ", t[r].data<long>().ToArray())));
        var one = CliRun.Of("infer", "--model", CliRun.Fixture("qwen2"), "--adapters", Path.Combine(peft, "qwen2-lora"), "--input_ids", ids,
            "--save_logits", temp.File("one.st"), "--device", "cpu");
        Assert.True(one.ExitCode == 0, one.ToString());
        var expected = Tensors(Path.Combine(peft, "qwen2-lora", "expected.safetensors"))["merged_logits"];
        var got = Tensors(temp.File("one.st"))["logits"];
        Assert.True(got.Zip(expected).Max(p => Math.Abs(p.First - p.Second)) < 2e-3);
        var two = CliRun.Of("infer", "--model", CliRun.Fixture("qwen2"), "--adapters", Path.Combine(peft, "qwen2-lora"), Path.Combine(peft, "qwen2-qv"),
            "--input_ids", ids, "--save_logits", temp.File("two.st"), "--device", "cpu");
        Assert.True(two.ExitCode == 0, two.ToString());
        Assert.Equal(2, two.Stderr.Split('\n').Count(l => l.StartsWith("osprey: merged adapter", StringComparison.Ordinal)));
        Assert.True(Tensors(temp.File("two.st"))["logits"].Zip(got).Max(p => Math.Abs(p.First - p.Second)) > 1e-2);
    }

    [Fact]
    public void ConfigFileGivesTheFlags()
    {
        using var temp = new TempDirectory();
        var config = temp.File("sft.yaml");
        File.WriteAllText(config, $"model: {CliRun.Fixture("qwen2")}\ndataset: {Memorize}\nmax_steps: 2\nlora_rank: 4\ngradient_accumulation_steps: 1\noutput_dir: {temp.File("out")}\nadd_version: false\n");
        var run = Sft("--config", config);
        Assert.True(run.ExitCode == 0, run.ToString());
        using var adapter = JsonDocument.Parse(File.ReadAllText(temp.File("out/checkpoint-2/adapter_config.json")));
        Assert.Equal(4, adapter.RootElement.GetProperty("r").GetInt32());
    }

    [Fact]
    public void PtTrainsOnPlainTextAndSaveStrategyNoWritesNoCheckpoint()
    {
        using var temp = new TempDirectory();
        var pt = CliRun.Of("pt", "--device", "cpu", "--load_from_cache_file", "false", "--model", CliRun.Fixture("qwen2"),
            "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "pretrain.jsonl"), "--max_steps", "2",
            "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--output_dir", temp.Path, "--add_version", "false", "--save_strategy", "no");
        Assert.True(pt.ExitCode == 0, pt.ToString());
        Assert.Empty(Directory.GetDirectories(temp.Path, "checkpoint-*"));
        Assert.Equal(2, Losses(temp.Path).Length);
    }

    [Theory]
    [InlineData("--train_type", "qlora", "--train_type 'qlora' is not supported")]
    [InlineData("--lora_rank", "0", "--lora_rank must be at least 1")]
    [InlineData("--target_modules", "nothing_here", "matches no linear layer")]
    [InlineData("--lr_scheduler_type", "step", "--lr_scheduler_type 'step' is not supported")]
    [InlineData("--resume_from_checkpoint", "/nonexistent/checkpoint-3", "does not exist")]
    public void BadFlagsGiveOneClearError(string flag, string value, string message)
    {
        using var temp = new TempDirectory();
        var run = Sft("--model", CliRun.Fixture("qwen2"), "--dataset", Memorize, "--max_steps", "1", "--output_dir", temp.Path, flag, value);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, run.Stderr);
        Assert.DoesNotContain("   at ", run.Stderr);
    }
}
