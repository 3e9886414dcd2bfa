using System.Text.Json;

namespace Osprey.Tests.Cli.Commands;

/// <summary><c>osprey benchmark</c> on a fixture: one table row and one JSON line per batch size.</summary>
public sealed class BenchmarkCommandTests
{
    [Fact]
    public void RunsEachBatchSizeAndAppendsJsonLines()
    {
        using var temp = new TempDirectory();
        var results = temp.File("r.jsonl");

        var run = CliRun.Of("benchmark", "--model", CliRun.Fixture("llama"), "--device", "cpu", "--batch_size", "1", "2",
            "--prompt_length", "8", "--max_new_tokens", "4", "--warmup", "0", "--result_path", results);

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.StdoutLines;
        Assert.StartsWith("model ", lines[0]);
        Assert.Contains("on cpu in float32", lines[0]);
        Assert.StartsWith("batch  prompt  new", lines[1]);
        var rows = lines.Skip(2).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        Assert.Equal(2, rows.Length);
        Assert.Equal(["1", "2"], rows.Select(r => r[0]));
        Assert.All(rows, r => Assert.Equal(["8", "4"], r[1..3]));

        var json = File.ReadAllLines(results);
        Assert.Equal(2, json.Length);
        var records = json.Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.All(records, r => Assert.Equal("osprey", r.GetProperty("engine").GetString()));
        Assert.All(records, r => Assert.Equal("float32", r.GetProperty("dtype").GetString()));
        Assert.Equal([1, 2], records.Select(r => r.GetProperty("result").GetProperty("Batch").GetInt32()));
        Assert.All(records, r => Assert.Equal(8, r.GetProperty("result").GetProperty("PromptLength").GetInt32()));
        Assert.All(records, r => Assert.Equal(4, r.GetProperty("result").GetProperty("NewTokens").GetInt32()));
    }

    [Fact]
    public void ABadBatchSizeIsRefused()
    {
        var run = CliRun.Of("benchmark", "--model", CliRun.Fixture("llama"), "--device", "cpu", "--batch_size", "0");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--batch_size", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void SampledEngineRounds_SayTheirSettings_AndATemperatureWithoutConcurrencyIsRefused()
    {
        var refused = CliRun.Of("benchmark", "--model", CliRun.Fixture("llama"), "--device", "cpu", "--temperature", "0.9");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--temperature needs --concurrency", Assert.Single(refused.StderrLines));

        var run = CliRun.Of("benchmark", "--model", CliRun.Fixture("llama"), "--device", "cpu", "--concurrency", "3",
            "--prompt_length", "6", "--max_new_tokens", "5", "--temperature", "0.9", "--top_p", "0.9", "--top_k", "20");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("sampling: temperature 0.9, top_p 0.9, top_k 20 (seeded per request)", run.StdoutLines);
        var row = run.StdoutLines.Last().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["3", "6", "5"], row[..3]);
    }

    [Fact]
    public void PairsPrintEachRatioThenTheirMedian_AndNeedAResponseFormat()
    {
        var refused = CliRun.Of("benchmark", "--model", CliRun.Fixture("llama"), "--device", "cpu", "--concurrency", "2", "--pairs", "3");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--pairs needs --response_format", Assert.Single(refused.StderrLines));

        var run = CliRun.Of("benchmark", "--model", CliRun.Fixture("qwen2"), "--device", "cpu", "--concurrency", "2",
            "--prompt_length", "4", "--max_new_tokens", "12", "--response_format", "json_object", "--pairs", "3");
        Assert.True(run.ExitCode == 0, run.ToString());
        var ratios = run.StdoutLines.Where(l => l.StartsWith("structured/plain throughput at 2 requests: ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(l.LastIndexOf('=') + 2)..], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(3, ratios.Length);
        var summary = Assert.Single(run.StdoutLines, l => l.StartsWith("structured/plain at 2 requests, median of 3 pairs: ", StringComparison.Ordinal));
        var sorted = ratios.Order().ToArray();
        Assert.Equal(FormattableString.Invariant($"structured/plain at 2 requests, median of 3 pairs: {sorted[1]:F3} ({sorted[0]:F3}-{sorted[2]:F3})"), summary);
    }

    [Fact]
    public void TheMedianOfAnEvenCountIsTheMeanOfTheMiddleTwo()
    {
        Assert.Equal((2.5, 1.0, 9.0), Osprey.Cli.Commands.BenchmarkCommand.Median([9, 1, 2, 3]));
        Assert.Equal((3.0, 1.0, 9.0), Osprey.Cli.Commands.BenchmarkCommand.Median([9, 3, 1]));
    }
}
