using System.Text;
using Osprey.Datasets;
using Parquet.Serialization;
using static Osprey.Tests.Datasets.DatasetTestHelpers;

namespace Osprey.Tests.Reliability;

/// <summary>
/// Input that would silently corrupt training is an error naming the file and line (or, under --strict false, a
/// skipped, counted and reported row): an unbalanced CSV quote, invalid UTF-8 bytes, a Parquet footer that lies.
/// </summary>
public sealed class DataInputTests
{
    const string Good = """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}""";

    static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    // Four data rows; the quote opened on row 2 closes inside row 3, which used to merge them into one row (exit 0).
    const string UnbalancedCsv = "query,response\nq1,r1\n\"q2 opens a quote,r2\nq3 \"closes\" it,r3\nq4,r4\n";

    [Fact]
    public void AnUnbalancedCsvQuoteIsAnErrorNamingTheFileRowAndLines()
    {
        using var dir = new TempDirectory();
        var path = dir.File("data.csv");
        File.WriteAllText(path, UnbalancedCsv);
        var error = LoadError(path);
        Assert.StartsWith($"{path} row 2: has a quoted field that opens on line 3 and closes on line 4 with text after its closing quote", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnbalancedCsvQuoteUnderStrictFalseIsSkippedCountedAndReported()
    {
        using var dir = new TempDirectory();
        var path = dir.File("data.csv");
        File.WriteAllText(path, UnbalancedCsv);
        var log = new StringWriter();
        var loaded = DatasetLoader.Load(new DatasetOptions { Datasets = [path], Strict = false, Shuffle = false }, log);
        var rows = loaded.Train.ToList();
        Assert.Equal(1, loaded.Skipped);
        Assert.Equal(["q1", "q4"], rows.Select(r => ((Dictionary<string, object?>)r.Conversation!.Messages[0]!)["content"]).Cast<string>());
        Assert.Contains($"skipped {path} row 2: has a quoted field", log.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("data.jsonl", "line 2")]
    [InlineData("data.txt", "line 2")]
    [InlineData("data.csv", "row 1")]
    [InlineData("data.json", "line 1")]
    public void InvalidUtf8IsAnErrorNamingTheFileAndLine(string name, string where)
    {
        using var dir = new TempDirectory();
        var path = dir.File(name);
        byte[] bad = [0xC3, 0x28, 0xFF];
        byte[] bytes = Path.GetExtension(name) switch
        {
            ".jsonl" => [.. Utf8(Good + "\n{\"messages\":[{\"role\":\"user\",\"content\":\"x"), .. bad, .. Utf8("\"},{\"role\":\"assistant\",\"content\":\"b\"}]}\n" + Good + "\n")],
            ".txt" => [.. Utf8("fine\nbroken "), .. bad, .. Utf8("\nfine\n")],
            ".csv" => [.. Utf8("query,response\nq"), .. bad, .. Utf8(",r\nq2,r2\n")],
            _ => [.. Utf8("[{\"text\": \"a"), .. bad, .. Utf8("\"}]")],
        };
        File.WriteAllBytes(path, bytes);
        var error = LoadError(path);
        Assert.Contains($"{path} {where}", error.Message, StringComparison.Ordinal);
        Assert.Contains("UTF-8", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidUtf8UnderStrictFalseIsSkippedCountedAndReported()
    {
        using var dir = new TempDirectory();
        var path = dir.File("data.jsonl");
        File.WriteAllBytes(path, [.. Utf8(Good + "\n{\"messages\":[{\"role\":\"user\",\"content\":\"x"), 0xFF, .. Utf8("\"},{\"role\":\"assistant\",\"content\":\"b\"}]}\n" + Good + "\n")]);
        var log = new StringWriter();
        var loaded = DatasetLoader.Load(new DatasetOptions { Datasets = [path], Strict = false, Shuffle = false }, log);
        Assert.Equal(2, loaded.Train.Count());
        Assert.Equal(1, loaded.Skipped);
        Assert.Contains($"skipped {path} line 2: has bytes that are not valid UTF-8", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AParquetFooterClaimingGigabytesIsOneSentence()
    {
        using var dir = new TempDirectory();
        var path = dir.File("data.parquet");
        await ParquetSerializer.SerializeAsync(new[] { new Row { Text = "hello" } }, path);
        var bytes = File.ReadAllBytes(path);
        BitConverter.TryWriteBytes(bytes.AsSpan(bytes.Length - 8, 4), 2_000_000_000);
        File.WriteAllBytes(path, bytes);
        var error = LoadError(path);
        Assert.StartsWith($"Dataset file {path} is a damaged Parquet file: its footer claims 2,000,000,000 bytes of metadata", error.Message, StringComparison.Ordinal);
    }

    public sealed class Row
    {
        public string? Text { get; set; }
    }
}
