using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Options;
using Osprey.Serving;
using Osprey.Tests.Cli.Commands;
using Osprey.Training;

namespace Osprey.Tests.Options;

/// <summary>
/// ms-swift's documented flags (tests/fixtures/ms-swift-examples/documented-flags.txt, names copied from ms-swift's
/// Command-line-parameters.md) are accepted by the matching verbs: as real flags, aliases, or no-effect flags with a
/// notice. Each name is declared once per verb, and a flag outside the lists is still an error with a suggestion.
/// </summary>
public sealed class MsSwiftFlagTests
{
    /// <summary>The options records each verb binds (one command line, so their names must not collide).</summary>
    public static readonly Dictionary<string, Type[]> Verbs = new()
    {
        ["sft"] = [typeof(SftOptions)],
        ["pt"] = [typeof(SftOptions)],
        ["rlhf"] = [typeof(RlhfOptions)],
        ["infer"] = [typeof(InferOptions)],
        ["deploy"] = [typeof(DeployOptions)],
        ["app"] = [typeof(DeployOptions)],
        ["export"] = [typeof(ModelOptions), typeof(ExportOptions)],
        ["merge-lora"] = [typeof(ModelOptions), typeof(ExportOptions)],
    };

    /// <summary>Which sections of ms-swift's parameter list each verb takes (ms-swift's "integration arguments").</summary>
    static readonly Dictionary<string, string[]> Sections = new()
    {
        ["sft"] = ["base", "model", "data", "template", "quantization", "ray", "seq2seq", "huggingface-trainer", "tuner", "training"],
        ["rlhf"] = ["base", "model", "data", "template", "quantization", "ray", "seq2seq", "huggingface-trainer", "tuner", "training", "rlhf", "engines"],
        ["infer"] = ["base", "model", "quantization", "ray", "generation", "merge", "engines", "inference"],
        ["deploy"] = ["base", "model", "quantization", "ray", "generation", "merge", "engines", "inference", "deployment", "web-ui", "app"],
        ["export"] = ["base", "model", "quantization", "ray", "merge", "export"],
    };

    /// <summary>ms-swift 2.x spellings its older examples use, per verb.</summary>
    static readonly Dictionary<string, string[]> OldSpellings = new()
    {
        ["sft"] = ["model_id_or_path", "sft_type", "batch_size", "lora_dropout_p"],
        ["rlhf"] = ["model_id_or_path", "sft_type", "batch_size", "lora_dropout_p"],
        ["infer"] = ["model_id_or_path", "ckpt_dir"],
        ["deploy"] = ["model_id_or_path", "ckpt_dir"],
        ["export"] = ["model_id_or_path", "ckpt_dir"],
    };

    /// <summary>Documented names a verb does not take, and why (docs/ms-swift-compat.md lists them).</summary>
    static readonly Dictionary<string, string[]> NotTaken = new()
    {
        ["infer"] = ["train_type"], // a training flag in ms-swift's base list
        ["deploy"] = ["train_type"],
        ["export"] = ["train_type", "template_mode"], // template_mode belongs to export --to_cached_dataset (osprey encode's flags)
    };

    static Dictionary<string, string[]> Documented() =>
        File.ReadLines(Path.Combine(TestPaths.Fixtures, "ms-swift-examples", "documented-flags.txt"))
            .Where(line => line.Length > 0 && line[0] != '#')
            .ToDictionary(line => line[..line.IndexOf(':')], line => line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries));

    static HashSet<string> Accepted(string verb)
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "config", "debug", "help" };
        foreach (var set in Verbs[verb].Select(OptionSet.For))
        {
            names.UnionWith(set.Options.SelectMany(o => o.Aliases.Prepend(o.Name)));
            names.UnionWith(set.NoEffect.Select(f => f.Name));
        }
        return names;
    }

    [Theory]
    [InlineData("sft")]
    [InlineData("rlhf")]
    [InlineData("infer")]
    [InlineData("deploy")]
    [InlineData("export")]
    public void EveryDocumentedFlagOfTheVerbIsAccepted(string verb)
    {
        var documented = Documented();
        var accepted = Accepted(verb);
        var missing = Sections[verb].SelectMany(section => documented[section]).Concat(OldSpellings[verb])
            .Except(NotTaken.GetValueOrDefault(verb, [])).Where(name => !accepted.Contains(name)).Distinct().ToList();
        Assert.True(missing.Count == 0, $"osprey {verb} does not accept ms-swift's --{string.Join(", --", missing)}.");
    }

    [Fact]
    public void EachNameIsDeclaredOncePerVerb()
    {
        foreach (var (verb, types) in Verbs)
        {
            var names = types.Select(OptionSet.For)
                .SelectMany(set => set.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Concat(set.NoEffect.Select(f => f.Name))).ToList();
            var twice = names.GroupBy(n => n).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            Assert.True(twice.Count == 0, $"osprey {verb} declares --{string.Join(", --", twice)} more than once (as a flag, an alias or a no-effect flag).");
        }
    }

    [Fact]
    public void NoEffectFlagsAreNeitherRealFlagsNorAliasesOfTheSameVerb()
    {
        foreach (var (verb, types) in Verbs)
        {
            var sets = types.Select(OptionSet.For).ToList();
            var real = sets.SelectMany(s => s.Options.SelectMany(o => o.Aliases.Prepend(o.Name))).ToHashSet();
            var both = sets.SelectMany(s => s.NoEffect).Select(f => f.Name).Where(real.Contains).ToList();
            Assert.True(both.Count == 0, $"osprey {verb}: --{string.Join(", --", both)} is both a flag and a no-effect flag.");
        }
    }

    [Fact]
    public void AGivenNoEffectFlagPrintsOneNoticeAndBindsNothing()
    {
        var notices = new StringWriter();
        var reader = new OptionReader(ParsedArgs.Parse(["--dataloader_num_workers", "4", "--ddp_find_unused_parameters", "true", "--use-liger-kernel", "true", "--lora_rank", "4"]), "sft", notices);
        var sft = reader.Bind<SftOptions>();
        reader.EnsureNoUnknownFlags();
        // The options are exactly those of the same command line without the no-effect flags.
        var plain = new OptionReader(ParsedArgs.Parse(["--lora_rank", "4"]), "sft").Bind<SftOptions>();
        var set = OptionSet.For<SftOptions>();
        Assert.Equal(set.ToJson(plain).ToJsonString(), set.ToJson(sft).ToJsonString());
        Assert.Equal(4, set.ToJson(sft)["lora_rank"]!.GetValue<int>());
        var lines = notices.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("osprey: --dataloader_num_workers has no effect here: ", lines[0]);
        Assert.StartsWith("osprey: --ddp_find_unused_parameters has no effect here: ", lines[1]);
        Assert.StartsWith("osprey: --use-liger-kernel has no effect here: ", lines[2]); // as the user spelt it
        Assert.All(lines, line => Assert.EndsWith(".", line));
    }

    [Fact]
    public void AnUnknownFlagIsStillAnErrorWithASuggestion()
    {
        var run = CliRun.Of("sft", "--model", "demo", "--dataloader_num_worker", "4");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--dataloader_num_worker (did you mean --dataloader_num_workers?)", run.Stderr);
    }

    [Fact]
    public void HelpListsNoEffectFlagsUnderTheirOwnHeading()
    {
        var help = CliRun.Of("sft", "--help").Stdout;
        var heading = help.IndexOf("Accepted for ms-swift scripts, no effect here", StringComparison.Ordinal);
        Assert.True(heading > 0, help);
        Assert.True(help.IndexOf("--dataloader_num_workers", StringComparison.Ordinal) > heading, help);
        Assert.True(help.IndexOf("--lora_rank", StringComparison.Ordinal) < heading, help);
        Assert.DoesNotContain("--dataloader_num_workers", help[..heading]);
    }

    [Theory]
    [InlineData(new[] { "--bf16", "true" }, "bfloat16")]
    [InlineData(new[] { "--fp16", "true" }, "float16")]
    [InlineData(new[] { "--bf16", "true", "--torch_dtype", "float32" }, "float32")]
    [InlineData(new[] { "--bf16", "false" }, "auto")]
    public void Bf16AndFp16MapToTheLoadDtype(string[] args, string dtype)
    {
        var model = new OptionReader(ParsedArgs.Parse(args), "export").Bind<ModelOptions>();
        Assert.Equal(dtype, model.LoadOptions(null).DType);
    }

    [Fact]
    public void Bf16AndFp16TogetherAreAnError()
    {
        var model = new OptionReader(ParsedArgs.Parse(["--bf16", "--fp16"]), "export").Bind<ModelOptions>();
        Assert.Contains("--bf16 true and --fp16 true", Assert.Throws<OspreyException>(() => model.ResolvedDtype()).Message);
    }
}
