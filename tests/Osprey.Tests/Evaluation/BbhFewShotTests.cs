using System.Text.Json.Nodes;
using Osprey.Tests.Cli.Commands;
using Parquet.Serialization;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// bbh with <c>--eval_few_shot 3</c>: the task's chain-of-thought exemplars (a made-up file in the BIG-Bench Hard
/// repository's cot-prompts layout, written here) go before the question in EvalScope's documented few-shot template
/// ("{fewshot}\n\nQ: {question}\nA: Let's think step by step. Put your final answer …", the few-shot block opening
/// "Task description: "); without the exemplars the run stops before asking anything.
/// </summary>
public sealed class BbhFewShotTests
{
    const string Instruction = "A: Let's think step by step. Put your final answer in the format of \"So the answer is [ANSWER]\" (without quotes and markdown) where [ANSWER] is the answer to the problem.\n";

    static async Task<string> Dataset(TempDirectory data)
    {
        Directory.CreateDirectory(Path.Combine(data.Path, "boolean_expressions"));
        await using var file = File.Create(Path.Combine(data.Path, "boolean_expressions", "test-00000-of-00001.parquet"));
        await ParquetSerializer.SerializeAsync(new[] { new McBenchmarkTests.BbhRow { input = "not True is", target = "False" } }, file);
        return data.Path;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task FewShot_PutsTheTasksExemplarsBeforeTheQuestion(bool separateFolder)
    {
        using var data = new TempDirectory();
        using var prompts = new TempDirectory();
        var dir = await Dataset(data);
        var exemplarDir = separateFolder ? prompts.Path : Path.Combine(dir, "cot-prompts");
        Directory.CreateDirectory(exemplarDir);
        File.WriteAllText(Path.Combine(exemplarDir, "boolean_expressions.txt"),
            "-----\nEvaluate made-up expressions.\n\nQ: True is\nA: Let's think step by step.\nIt is True. So the answer is True.\n");
        var args = new JsonObject { ["bbh"] = new JsonObject { ["local_path"] = dir } };
        if (separateFolder) args["bbh"]!["cot_prompts_dir"] = prompts.Path;
        using var output = new TempDirectory();
        using var server = new UrlEvaluationTests.PatternServer("So the answer is False.", failFirst: 0);
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--eval_dataset", "bbh", "--dataset_args", args.ToJsonString(), "--eval_few_shot", "3", "--eval_output_dir", output.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("| m | bbh | acc | OVERALL | 1 | 1.0000 |", run.Stdout);
        var sent = (string)server.Bodies.Single()["messages"]!.AsArray().Single()!["content"]!;
        Assert.Equal("Task description: Evaluate made-up expressions.\n\nQ: True is\nA: Let's think step by step.\nIt is True. So the answer is True.\n\nQ: not True is\n" + Instruction, sent);
    }

    [Fact]
    public async Task ZeroShot_IsTheQuestionAlone()
    {
        using var data = new TempDirectory();
        var dir = await Dataset(data);
        using var output = new TempDirectory();
        using var server = new UrlEvaluationTests.PatternServer("So the answer is False.", failFirst: 0);
        var args = new JsonObject { ["bbh"] = new JsonObject { ["local_path"] = dir } }.ToJsonString();
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--eval_dataset", "bbh", "--dataset_args", args, "--eval_output_dir", output.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("Q: not True is\n" + Instruction, (string)server.Bodies.Single()["messages"]!.AsArray().Single()!["content"]!);
    }

    [Fact]
    public async Task FewShot_WithoutExemplars_StopsBeforeAskingAndSaysWhereToPutThem()
    {
        using var data = new TempDirectory();
        var dir = await Dataset(data);
        using var output = new TempDirectory();
        using var server = new UrlEvaluationTests.PatternServer("So the answer is False.", failFirst: 0);
        var args = new JsonObject { ["bbh"] = new JsonObject { ["local_path"] = dir } }.ToJsonString();
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--eval_dataset", "bbh", "--dataset_args", args, "--eval_few_shot", "3", "--eval_output_dir", output.Path);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("cot_prompts_dir", run.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, server.Requests);
    }
}
