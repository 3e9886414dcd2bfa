using System.Text.Json;
using Osprey.Options;
using Osprey.Tests.Cli.Commands;
using Osprey.Training;
using Osprey.Training.Preference;
using Osprey.Tuners.Lora;

namespace Osprey.Tests.Options;

/// <summary>
/// The flag declarations: every flag the training verbs take is declared once with ms-swift's default, binding by name
/// or alias fills fresh records, bad choices name the flag and the choices, and help and args.json come from them.
/// </summary>
public sealed class OptionSetTests
{
    // Every flag osprey sft read by hand before the declarations existed (c85082d), plus its one alias.
    static readonly string[] SftFlags =
    [
        "model", "use_hf", "device", "torch_dtype", "dataset", "val_dataset", "split_dataset_ratio", "dataset_shuffle", "columns",
        "disable_auto_column_mapping", "strict", "model_name", "model_author", "streaming", "cached_dataset", "template", "system",
        "loss_scale", "max_length", "truncation_strategy", "packing", "dataset_num_proc", "load_from_cache_file", "train_type",
        "tuner_type", "lora_rank", "lora_alpha", "lora_dropout", "target_modules", "target_regex", "modules_to_save", "use_dora",
        "use_rslora", "lorap_lr_ratio", "freeze_parameters", "trainable_parameters", "num_train_epochs", "max_steps",
        "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate",
        "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
        "max_grad_norm", "gradient_checkpointing", "seed", "logging_steps", "save_steps", "eval_steps", "save_total_limit",
        "save_only_model", "save_strategy", "output_dir", "add_version", "resume_from_checkpoint", "resume_only_model",
    ];

    [Fact]
    public void EveryTrainingFlagIsDeclaredExactlyOnce()
    {
        var set = OptionSet.For<SftOptions>();
        foreach (var flag in SftFlags) Assert.True(set.Find(flag) is not null, $"--{flag} is not declared");
        var names = set.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        var rlhf = OptionSet.For<RlhfOptions>();
        foreach (var flag in SftFlags.Concat(["rlhf_type", "beta", "loss_type", "label_smoothing", "rpo_alpha", "simpo_gamma", "cpo_alpha",
                     "desirable_weight", "undesirable_weight", "center_rewards_coefficient", "ref_model", "ref_adapters", "precompute_ref_log_probs"]))
            Assert.True(rlhf.Find(flag) is not null, $"rlhf: --{flag} is not declared");
    }

    [Theory]
    // ms-swift's documented defaults (swift/llm/argument: TunerArguments, TrainArguments, RLHFArguments).
    [InlineData("lora_rank", "8")]
    [InlineData("lora_alpha", "32")]
    [InlineData("lora_dropout", "0.05")]
    [InlineData("target_modules", "all-linear")]
    [InlineData("num_train_epochs", "3")]
    [InlineData("per_device_train_batch_size", "1")]
    [InlineData("weight_decay", "0.1")]
    [InlineData("adam_beta2", "0.95")]
    [InlineData("lr_scheduler_type", "cosine")]
    [InlineData("max_grad_norm", "1")]
    [InlineData("logging_steps", "5")]
    [InlineData("save_steps", "500")]
    [InlineData("train_type", "lora")]
    [InlineData("gradient_checkpointing", "true")]
    [InlineData("seed", "42")]
    public void DefaultsAreMsSwifts(string flag, string expected) =>
        Assert.Equal(expected, OptionSet.For<SftOptions>().Find(flag)!.DefaultText);

    [Fact]
    public void BindingByNameOrAliasFillsFreshRecordsAndKeepsTheRestAtDefaults()
    {
        var bound = OptionSet.For<SftOptions>().BindStrings<SftOptions>(new Dictionary<string, IReadOnlyList<string>>
        {
            ["lora_rank"] = ["16"],
            ["tuner_type"] = ["full"],
            ["lr_scheduler_type"] = ["constant-with-warmup"],
            ["dataset"] = ["a.jsonl", "b.jsonl"],
            ["columns"] = ["{\"q\": \"query\"}"],
            ["model_name"] = ["小鹗", "Osprey"],
        });
        Assert.Equal(16, bound.Trainer.Lora.Rank);
        Assert.Equal(TrainType.Full, bound.Trainer.TrainType);
        Assert.Equal(LrSchedulerType.ConstantWithWarmup, bound.Trainer.LrSchedulerType);
        Assert.Equal(["a.jsonl", "b.jsonl"], bound.Data.Datasets);
        Assert.Equal("query", bound.Data.Columns!["q"]);
        Assert.Equal(("小鹗", "Osprey"), bound.Data.ModelName);
        Assert.Equal(32, bound.Trainer.Lora.Alpha);
        Assert.Null(bound.Trainer.LearningRate);
        // Binding copied the nested records: a new record still has the declared defaults.
        Assert.Equal(8, new SftOptions().Trainer.Lora.Rank);
        Assert.Equal(8, new LoraOptions().Rank);
    }

    [Fact]
    public void ArgsJsonBindsBackToTheSameOptions()
    {
        var set = OptionSet.For<RlhfOptions>();
        var original = new RlhfOptions
        {
            Loss = new() { RlhfType = RlhfType.RewardModel, Beta = 0.3 },
            ReferenceAdapters = ["x"],
            FineTune = new() { Trainer = new() { Lora = new() { Rank = 4, TargetModules = ["q_proj", "v_proj"] }, MaxSteps = 7 }, Encoding = new() { MaxLength = 99 } },
        };
        var json = set.ToJson(original);
        Assert.Equal("rm", json["rlhf_type"]!.GetValue<string>());
        var strings = json.Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)(kv.Value switch
        {
            System.Text.Json.Nodes.JsonArray a => a.Select(v => v!.ToString()).ToList(),
            var v => [v!.ToJsonString().Trim('"')],
        }));
        var back = set.BindStrings<RlhfOptions>(strings);
        Assert.Equal(json.ToJsonString(), set.ToJson(back).ToJsonString());
    }

    [Fact]
    public void ABadChoiceNamesTheFlagAndTheChoices()
    {
        var e = Assert.Throws<OspreyException>(() => OptionSet.For<RlhfOptions>().BindStrings<RlhfOptions>(
            new Dictionary<string, IReadOnlyList<string>> { ["rlhf_type"] = ["gkd"] }));
        Assert.Equal("--rlhf_type 'gkd' is not supported; use dpo, kto, orpo, simpo, cpo, rm, grpo or ppo.", e.Message);
        var unknown = Assert.Throws<OspreyException>(() => OptionSet.For<SftOptions>().BindStrings<SftOptions>(
            new Dictionary<string, IReadOnlyList<string>> { ["lora_rnak"] = ["4"] }));
        Assert.StartsWith("--lora_rnak is not a flag of SftOptions", unknown.Message);
    }

    sealed record Twice
    {
        [Option("same", "One.")] public int A { get; init; }

        [Option("other", "Two.", Aliases = ["same"])] public int B { get; init; }
    }

    [Fact]
    public void ARecordThatDeclaresAFlagTwiceIsRefused() =>
        Assert.Contains("declares the flag --same twice", Assert.Throws<InvalidOperationException>(() => OptionSet.For<Twice>()).Message);

    [Fact]
    public void HelpListsEveryDeclaredFlagWithItsDefault()
    {
        var run = CliRun.Of("rlhf", "--help");
        Assert.Equal(0, run.ExitCode);
        foreach (var spec in OptionSet.For<RlhfOptions>().Options)
            Assert.Contains($"  --{spec.Name} ", run.Stdout);
        Assert.Contains("--lora_rank N", run.Stdout);
        Assert.Contains("Default: 8.", run.Stdout);
        Assert.Contains("Default: 0.1; SimPO 2.0; GRPO 0.04.", run.Stdout);
    }

    [Fact]
    public void ArgsJsonRecordsEveryFlagWithTheValuesTheRunUsed()
    {
        using var temp = new TempDirectory();
        var run = CliRun.Of("sft", "--device", "cpu", "--model", CliRun.Fixture("qwen2"), "--dataset",
            Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl"), "--max_steps", "1", "--per_device_train_batch_size", "3",
            "--tuner_type", "full", "--output_dir", temp.Path, "--add_version", "false", "--load_from_cache_file", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        using var args = JsonDocument.Parse(File.ReadAllText(Path.Combine(temp.Path, "args.json")));
        var root = args.RootElement;
        // Every flag but credentials (--hub_token), which args.json must not carry into checkpoints.
        foreach (var spec in OptionSet.For<SftOptions>().Options) Assert.True(root.TryGetProperty(spec.Name, out _) != spec.Secret, $"args.json lacks {spec.Name} or holds a secret");
        Assert.Equal("sft", root.GetProperty("command").GetString());
        Assert.Equal("full", root.GetProperty("train_type").GetString());
        // Defaults decided from other flags are recorded as resolved: 1e-5 for full training, ceil(16 / 3) micro-batches.
        Assert.Equal(1e-5, root.GetProperty("learning_rate").GetDouble());
        Assert.Equal(6, root.GetProperty("gradient_accumulation_steps").GetInt32());
        Assert.Equal("default", root.GetProperty("loss_scale").GetString());
    }
}
