using Osprey.Datasets;
using static Osprey.Tests.Datasets.DatasetTestHelpers;

namespace Osprey.Tests.Datasets;

public sealed class DatasetErrorTests
{
    private static string Write(TempDirectory dir, string name, string text)
    {
        var path = dir.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    private const string Good = """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}""";

    [Theory]
    [InlineData("""{"messages": [""", "not valid JSON", null)]
    [InlineData("""[1, 2]""", "not a JSON object", null)]
    [InlineData("""{"messages": "hello"}""", "must be a list", "messages")]
    [InlineData("""{"messages": []}""", "empty conversation", "messages")]
    [InlineData("""{"messages": [{"role":"user","content":"hi"}]}""", "must end with the assistant's reply", "messages")]
    [InlineData("""{"messages": [{"content":"hi"},{"role":"assistant","content":"x"}]}""", "has no \"role\"", "messages")]
    [InlineData("""{"messages": [{"role":"user","content":5},{"role":"assistant","content":"x"}]}""", "a \"content\" that is a number", "messages")]
    [InlineData("""{"messages": [{"role":"robot","content":"hi"},{"role":"assistant","content":"x"}]}""", "the role \"robot\"", "messages")]
    [InlineData("""{"messages": [{"role":"user","content":"a"},{"role":"assistant","content":"b"}], "tools": 3}""", "must be a list of tool schemas", "tools")]
    public void BadMessagesLine_NamesFileLineAndField(string badLine, string expected, string? field)
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "bad.jsonl", Good + "\n" + Good + "\n" + badLine + "\n" + Good + "\n");
        var error = LoadError(path);
        Assert.StartsWith(path + " line 3: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        if (field is not null) Assert.Contains($"\"{field}\"", error.Message, StringComparison.Ordinal);
        Assert.Contains("--strict false", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Alpaca_MissingOutput()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "a.jsonl", """{"instruction":"x","input":"","output":"y"}""" + "\n" + """{"instruction":"x","input":"y"}""" + "\n");
        var error = LoadError(path);
        Assert.StartsWith(path + " line 2: field \"output\" is missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Alpaca_WrongType()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "a.json", """[{"instruction":"x","output":"y"}, {"instruction":["x"],"output":"y"}]""");
        var error = LoadError(path);
        Assert.StartsWith(path + " item 2: field \"instruction\" must be a string, got a list", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kto_BadLabel()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "k.jsonl", """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}],"label":true}""" + "\n" + """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}],"label":"maybe"}""" + "\n");
        var error = LoadError(path);
        Assert.StartsWith(path + " line 2: field \"label\" must be true or false, got a string \"maybe\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Preference_MissingRejected()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "p.jsonl", """{"prompt":"a","chosen":"b","rejected":"c"}""" + "\n" + """{"prompt":"a","chosen":"b"}""" + "\n");
        var error = LoadError(path);
        Assert.StartsWith(path + " line 2: field \"rejected\" is missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_WrongType()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "t.jsonl", """{"text":"a"}""" + "\n" + """{"text":{"x":1}}""" + "\n");
        var error = LoadError(path);
        Assert.StartsWith(path + " line 2: field \"text\" must be a string, got an object", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownFormat_NamesFields()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "u.jsonl", """{"foo":"a","bar":"b"}""" + "\n");
        var error = LoadError(path);
        Assert.StartsWith(path + " line 1: matches no dataset format: its fields are \"foo\", \"bar\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Csv_WrongFieldCount_AndUnclosedQuote()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "c.csv", "query,response\nq1,r1\nq2,r2,extra\n");
        var error = LoadError(path);
        Assert.StartsWith(path + " row 2: 3 fields but the header has 2", error.Message, StringComparison.Ordinal);
        var unclosed = Write(dir, "d.csv", "query,response\nq1,\"r1\n");
        Assert.StartsWith(unclosed + " row 1: a quoted field is never closed", LoadError(unclosed).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_NotArray()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "j.json", """{"rows": []}""");
        Assert.Contains("{\"data\": [...]}", LoadError(path).Message, StringComparison.Ordinal);
        var broken = Write(dir, "k.json", "[{\"a\":1},\n{");
        var error = LoadError(broken);
        Assert.Contains(broken + " line 2 is not valid JSON", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StrictFalse_SkipsCountsAndReports()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "bad.jsonl", "{oops\n" + Good + "\n" + """{"messages": []}""" + "\n" + Good + "\n" + """{"messages":[{"role":"user","content":"a"}]}""" + "\n");
        var log = new StringWriter();
        var loaded = DatasetLoader.Load(new DatasetOptions { Datasets = [path], Strict = false, Shuffle = false }, log);
        Assert.Equal(2, loaded.Train.Count());
        Assert.Equal(3, loaded.Skipped);
        var text = log.ToString();
        Assert.Contains($"skipped {path} line 1: not valid JSON", text, StringComparison.Ordinal);
        Assert.Contains($"skipped {path} line 3: field \"messages\" is an empty conversation", text, StringComparison.Ordinal);
        Assert.Contains($"skipped {path} line 5:", text, StringComparison.Ordinal);
        Assert.Contains("3 bad rows skipped", text, StringComparison.Ordinal);
    }

    [Fact]
    public void StrictFalse_Streaming_CountsAsRead()
    {
        using var dir = new TempDirectory();
        var path = Write(dir, "bad.jsonl", Good + "\n{oops\n" + Good + "\n");
        var loaded = DatasetLoader.Load(new DatasetOptions { Datasets = [path], Strict = false, Shuffle = false, Streaming = true });
        Assert.Equal(0, loaded.Skipped);
        Assert.Equal(2, loaded.Train.Count());
        Assert.Equal(1, loaded.Skipped);
    }

    [Fact]
    public void BadOptions()
    {
        Assert.Contains("--split_dataset_ratio", Assert.Throws<OspreyException>(() => DatasetLoader.Load(new DatasetOptions { Datasets = [Example("pretrain.txt")], SplitDatasetRatio = 1 })).Message, StringComparison.Ordinal);
        Assert.Contains("No dataset", Assert.Throws<OspreyException>(() => DatasetLoader.Load(new DatasetOptions())).Message, StringComparison.Ordinal);
        Assert.Contains("#0", Assert.Throws<OspreyException>(() => DatasetLoader.ParseSpec("x.jsonl#0")).Message, StringComparison.Ordinal);
    }
}
