namespace Osprey.Tests.Cli.Commands;

/// <summary>The real <c>osprey</c> lists and documents its built-in verbs.</summary>
public sealed class BuiltInCommandsTests
{
    private static readonly string[] Verbs = ["env", "download", "cache", "infer", "export", "benchmark", "tokenize", "dataset", "encode", "sft", "pt", "merge-lora", "rlhf", "deploy", "app", "graph-probe", "kernel-probe", "estimate", "eval", "web-ui"];

    [Fact]
    public void HelpListsEveryVerb()
    {
        var run = CliRun.Of("--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Empty(run.Stderr);
        var commands = run.StdoutLines.SkipWhile(l => l != "Commands:").Skip(1).TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal));
        Assert.Equal(Verbs.Order(StringComparer.Ordinal), commands.Select(l => l.Trim().Split(' ')[0]).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("env", "--device D")]
    [InlineData("infer", "--input_ids IDS")]
    [InlineData("export", "--max_shard_size SIZE")]
    [InlineData("benchmark", "--batch_size N")]
    [InlineData("tokenize", "--benchmark_file FILE")]
    [InlineData("infer", "--val_dataset FILE")]
    [InlineData("infer", "--adapters DIR...")]
    [InlineData("sft", "--resume_from_checkpoint DIR")]
    [InlineData("pt", "--lora_rank N")]
    [InlineData("merge-lora", "--adapters DIR...")]
    [InlineData("deploy", "--api_key KEY")]
    [InlineData("app", "--served_model_name NAME")]
    public void EachVerbHasHelp(string verb, string flag)
    {
        var run = CliRun.Of(verb, "--help");

        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith($"Usage: osprey {verb} ", run.Stdout);
        Assert.Contains(flag, run.Stdout);
    }
}
