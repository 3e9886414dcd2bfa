using Osprey.Tests.Cli.Commands;
using static Osprey.Tests.Datasets.DatasetTestHelpers;

namespace Osprey.Tests.Datasets;

[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class DatasetCommandTests
{
    [Fact]
    public void List_PrintsRegistryAndCacheState()
    {
        using var dir = new TempDirectory();
        var repo = dir.File("datasets--vicgalle--alpaca-gpt4");
        Directory.CreateDirectory(Path.Combine(repo, "snapshots", "rev1"));
        File.Copy(Example("alpaca.json"), Path.Combine(repo, "snapshots", "rev1", "alpaca.json"));
        using var hf = new EnvironmentVariableScope("HF_HUB_CACHE", dir.Path);
        using var ms = new EnvironmentVariableScope("MODELSCOPE_CACHE", dir.File("ms"));
        var run = CliRun.Of("dataset", "list");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(run.Stdout, CliRun.Of("dataset", "--list").Stdout);
        Assert.StartsWith("name", run.StdoutLines[0], StringComparison.Ordinal);
        var alpaca = run.StdoutLines.Single(l => l.StartsWith("alpaca-gpt4-data-en ", StringComparison.Ordinal));
        Assert.Contains("AI-ModelScope/alpaca-gpt4-data-en", alpaca, StringComparison.Ordinal);
        Assert.Contains("vicgalle/alpaca-gpt4", alpaca, StringComparison.Ordinal);
        Assert.Contains("alpaca", alpaca, StringComparison.Ordinal);
        Assert.Contains("yes (", alpaca, StringComparison.Ordinal);
        var sharegpt = run.StdoutLines.Single(l => l.StartsWith("sharegpt_gpt4 ", StringComparison.Ordinal));
        Assert.Contains("default,V3_format,zh_38K_format", sharegpt, StringComparison.Ordinal);
        Assert.EndsWith("no", sharegpt, StringComparison.Ordinal);
        foreach (var name in new[] { "alpaca-gpt4-data-zh", "self-cognition", "ultrafeedback-binarized-preferences-cleaned", "ultrafeedback-binarized-preferences-cleaned-kto", "wikipedia-cn-20230720-filtered" })
            Assert.Contains(run.StdoutLines, l => l.StartsWith(name + " ", StringComparison.Ordinal));
    }

    [Fact]
    public void Check_PrintsFormatAndRows()
    {
        var run = CliRun.Of("dataset", "check", Example("sharegpt.jsonl"));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("format sharegpt", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("11 rows", run.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_BadFile_IsUserError()
    {
        using var dir = new TempDirectory();
        var path = dir.File("bad.jsonl");
        File.WriteAllText(path, "{oops\n");
        var run = CliRun.Of("dataset", "--check", path);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(path + " line 1: not valid JSON", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void NoSubCommand_IsUserError()
    {
        var run = CliRun.Of("dataset");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("'list'", run.Stderr, StringComparison.Ordinal);
    }
}
