using Osprey.Tests.Models;

namespace Osprey.Tests.Cli.Commands;

/// <summary>
/// <c>osprey infer</c> end to end on the parity fixtures: what it prints must be transformers' own greedy
/// generations (golden.json), alone, batched and streamed, and bad flags must be refused as usage errors.
/// </summary>
public sealed class InferCommandTests
{
    private const int Eos = 2;

    private static string Ids(IEnumerable<int> ids) => string.Join(' ', ids);

    /// <summary>The reason transformers stopped: an eos before the token budget ran out, else length.</summary>
    private static string Reason(IReadOnlyList<int> tokens, int maxNewTokens) =>
        tokens.Count < maxNewTokens && tokens[^1] == Eos ? "eos" : "length";

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")] // its first prompt ends on eos after 8 tokens
    public void GreedyIdsAreTransformersGreedyIds(string family)
    {
        var c = ParityCase.Load(CliRun.Fixture(family));
        var max = c.Golden.GetProperty("max_new_tokens").GetInt32();
        var prompt = c.IntLists("prompts")[0];
        var expected = c.IntLists("greedy_single")[0];

        var run = CliRun.Of("infer", "--model", c.Directory, "--device", "cpu", "--input_ids", Ids(prompt), "--max_new_tokens", $"{max}");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal($"[0] {Ids(expected)}  ({Reason(expected, max)})\n", run.Stdout);
        Assert.Empty(run.Stderr);
    }

    [Fact]
    public void QwenStopsAtEos()
    {
        // Guards the fixture choice above: without eos in a golden row the "(eos)" branch would go untested.
        var c = ParityCase.Load(CliRun.Fixture("qwen2"));
        Assert.Equal("eos", Reason(c.IntLists("greedy_single")[0], c.Golden.GetProperty("max_new_tokens").GetInt32()));
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    public void BatchedPromptsPrintOneLineEachEqualToBatchedGreedy(string family)
    {
        var c = ParityCase.Load(CliRun.Fixture(family));
        var max = c.Golden.GetProperty("max_new_tokens").GetInt32();
        var prompts = c.IntLists("prompts");
        var expected = c.IntLists("greedy_batched");
        Assert.True(prompts.Count > 1);
        // Commas within a prompt, ';' between prompts.
        var input = string.Join(';', prompts.Select(p => string.Join(',', p)));

        var run = CliRun.Of("infer", "--model", c.Directory, "--device", "cpu", "--input_ids", input, "--max_new_tokens", $"{max}");

        Assert.True(run.ExitCode == 0, run.ToString());
        var want = expected.Select((e, i) => $"[{i}] {Ids(e)}  ({Reason(e, max)})").ToArray();
        Assert.Equal(want, run.StdoutLines);
    }

    [Fact]
    public void StreamPrintsTheIdsOnOneLine()
    {
        var c = ParityCase.Load(CliRun.Fixture("llama3"));
        var max = c.Golden.GetProperty("max_new_tokens").GetInt32();
        var expected = c.IntLists("greedy_single")[0];

        var run = CliRun.Of("infer", "--model", c.Directory, "--device", "cpu", "--input_ids", Ids(c.IntLists("prompts")[0]),
            "--max_new_tokens", $"{max}", "--stream", "true");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(Ids(expected) + "\n", run.Stdout);
        Assert.Equal($"osprey: {expected.Count} tokens, finished by length.\n", run.Stderr);
    }

    [Fact]
    public void MaxNewTokensCapsTheGeneration()
    {
        var c = ParityCase.Load(CliRun.Fixture("llama3"));
        var expected = c.IntLists("greedy_single")[0];

        var run = CliRun.Of("infer", "--model", c.Directory, "--device", "cpu", "--input_ids", Ids(c.IntLists("prompts")[0]), "--max_new_tokens", "5");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal($"[0] {Ids(expected.Take(5))}  (length)\n", run.Stdout);
    }

    [Fact]
    public void InputIdsThatAreNotIntegersAreAUsageError()
    {
        var run = CliRun.Of("infer", "--model", CliRun.Fixture("llama3"), "--device", "cpu", "--input_ids", "1 x", "--max_new_tokens", "3");

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Stdout);
        var line = Assert.Single(run.StderrLines);
        Assert.StartsWith("osprey: ", line);
        Assert.Contains("--input_ids", line);
        Assert.Contains("'x'", line);
    }

    [Theory]
    [InlineData("1 2;")]
    [InlineData(";")]
    public void AnEmptyPromptIsAUsageError(string ids)
    {
        var run = CliRun.Of("infer", "--model", CliRun.Fixture("llama3"), "--device", "cpu", "--input_ids", ids, "--max_new_tokens", "3");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--input_ids", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void UnknownInferenceBackendsAreRefused()
    {
        // ms-swift's vllm, sglang and lmdeploy run Osprey's engine with a notice (MsSwiftExampleTests); others are errors.
        var run = CliRun.Of("infer", "--model", CliRun.Fixture("llama3"), "--device", "cpu", "--infer_backend", "tgi", "--max_new_tokens", "3");

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Stdout);
        Assert.Contains("--infer_backend tgi", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void StreamingTwoPromptsIsRefused()
    {
        var run = CliRun.Of("infer", "--model", CliRun.Fixture("llama3"), "--device", "cpu", "--input_ids", "1 2;3 4",
            "--stream", "true", "--max_new_tokens", "3");

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Stdout);
        Assert.Contains("--stream", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void AMisspeltFlagIsRefusedWithASuggestion()
    {
        var run = CliRun.Of("infer", "--model", CliRun.Fixture("llama3"), "--device", "cpu", "--max_new_token", "3");

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Stdout);
        Assert.Contains("did you mean --max_new_tokens", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void AMissingModelFolderIsAUsageError()
    {
        using var temp = new TempDirectory();
        var missing = temp.File("no-such-model");

        var run = CliRun.Of("infer", "--model", missing, "--device", "cpu", "--max_new_tokens", "3");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains(missing, Assert.Single(run.StderrLines));
    }
}
