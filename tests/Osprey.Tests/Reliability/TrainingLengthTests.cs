using System.Diagnostics;
using System.Text.Json;
using Osprey.Datasets;
using Osprey.Templates;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;

namespace Osprey.Tests.Reliability;

/// <summary>
/// Training never tokenizes a row without a bound: --max_length defaults to the model's context
/// (max_position_embeddings, 256 for the qwen2 fixture), a multi-megabyte row costs memory bounded by --max_length,
/// and a sample over it is deleted or truncated with a report line, never trained past the context.
/// </summary>
public sealed class TrainingLengthTests
{
    static string Qwen2 => CliRun.Fixture("qwen2");

    static string Chat(string user, string assistant) =>
        JsonSerializer.Serialize(new { messages = new object[] { new { role = "user", content = user }, new { role = "assistant", content = assistant } } });

    static string[] ShortRows => [Chat("Who are you?", "A tiny model."), Chat("What do ospreys eat?", "Mostly fish."), Chat("What is 2+2?", "Four.")];

    [Fact]
    public void AMultiMegabyteTextEncodesWithBoundedAllocation()
    {
        var encoder = new DatasetEncoder(Tokenizer.Load(Qwen2), new EncodingOptions { MaxLength = 256, Truncation = TruncationStrategy.Right, Threads = 1 });
        var text = new string('x', 5_000_000);
        var row = new DatasetRow("big.jsonl", 1, DatasetFormat.Text, null, text);
        encoder.Encode(new DatasetRow("warm.jsonl", 1, DatasetFormat.Text, null, "warm up the tokenizer"));
        var stats = new EncodingStats();
        var before = GC.GetAllocatedBytesForCurrentThread();
        var sample = encoder.Encode(row, stats);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.NotNull(sample);
        Assert.Equal(256, sample.Length);
        Assert.Equal(1, stats.Truncated);
        // The row itself is 10 MB of UTF-16; encoding it whole allocated gigabytes.
        Assert.True(allocated < 64L << 20, $"encoding allocated {allocated:N0} bytes");
    }

    [Fact]
    public void SftWithoutMaxLengthDeletesAMultiMegabyteRowAndTrainsInBoundedMemory()
    {
        using var temp = new TempDirectory();
        var data = temp.File("data.jsonl");
        File.WriteAllLines(data, [.. ShortRows, Chat("Repeat this: " + new string('y', 5_000_000), "No.")]);
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        var before = self.WorkingSet64;
        var run = CliRun.Of("sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", Qwen2, "--dataset", data, "--max_steps", "1",
            "--per_device_train_batch_size", "1", "--save_strategy", "no", "--output_dir", temp.File("out"));
        self.Refresh();
        var delta = self.PeakWorkingSet64 - before;
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"warning: {data} line 4 (5,000,013 characters in one text) is longer than --max_length 256; deleted (--truncation_strategy delete).", run.ToString());
        Assert.Contains("1 deleted", run.ToString());
        Assert.True(delta < 1536L << 20, $"peak working set grew by {delta:N0} bytes");
    }

    [Theory]
    [InlineData("delete", "1 deleted, 0 truncated")]
    [InlineData("right", "0 deleted, 1 truncated")]
    public void ASampleOverTheModelContextIsDeletedOrTruncatedWithAReportLine(string strategy, string summary)
    {
        using var temp = new TempDirectory();
        var data = temp.File("data.jsonl");
        // ~1,250 tokens against the fixture's 256-token context.
        File.WriteAllLines(data, [.. ShortRows, Chat(string.Join(' ', Enumerable.Range(0, 250).Select(i => $"w{i}")), "Done.")]);
        var run = CliRun.Of("sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", Qwen2, "--dataset", data, "--max_steps", "1",
            "--per_device_train_batch_size", "1", "--save_strategy", "no", "--truncation_strategy", strategy, "--output_dir", temp.File("out"));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains(summary, run.ToString());
        if (strategy == "delete") Assert.Matches($@"warning: .*data\.jsonl line 4 \(\d+ tokens\) is longer than --max_length 256; deleted", run.ToString());
    }

    /// <summary>
    /// <c>osprey encode</c> without --max_length takes the context from config.json as training does: a 5 MB row is
    /// cut at the character bound and deleted with its report line (it used to be tokenized whole and written out), and
    /// no written sample is longer than the context.
    /// </summary>
    [Fact]
    public void EncodeWithoutMaxLengthTakesTheModelContextAndDeletesAMultiMegabyteRow()
    {
        using var temp = new TempDirectory();
        var data = temp.File("data.jsonl");
        var output = temp.File("encoded.jsonl");
        File.WriteAllLines(data, [.. ShortRows, Chat("Repeat this: " + new string('y', 5_000_000), "No.")]);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(Qwen2, "config.json")));
        var context = config.RootElement.GetProperty("max_position_embeddings").GetInt32();
        var run = CliRun.Of("encode", "--model", Qwen2, "--dataset", data, "--load_from_cache_file", "false", "--output", output);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"warning: {data} line 4 (5,000,013 characters in one text) is longer than --max_length {context}; deleted (--truncation_strategy delete).", run.ToString());
        var samples = File.ReadAllLines(output);
        Assert.Equal(3, samples.Length);
        foreach (var line in samples)
        {
            using var sample = JsonDocument.Parse(line);
            Assert.InRange(sample.RootElement.GetProperty("input_ids").GetArrayLength(), 1, context);
        }
    }
}
