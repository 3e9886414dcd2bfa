using Osprey.Cli;
using Osprey.Cli.Args;

namespace Osprey.Tests.Cli;

public sealed class ConfigFileTests
{
    private const string Yaml = """
        # ms-swift style config
        model: Qwen/Qwen3-0.6B   # trailing comment
        max_new_tokens: 128
        learning-rate: 1e-4
        stream: true
        system: "You are helpful. # not a comment"
        dataset: [alpaca, 'sharegpt#500']
        target_modules:
          - q_proj
          - v_proj
        val_dataset: ~
        quoted_null: "null"
        """;

    [Fact]
    public void YamlScalarsListsCommentsAndQuotes()
    {
        using var file = new TempConfig("train.yaml", Yaml);
        var args = ParsedArgs.Parse(["--config", file.Path]);

        Assert.Equal(["Qwen/Qwen3-0.6B"], args.Find("model")!.Values);
        Assert.Equal(["128"], args.Find("max_new_tokens")!.Values);
        Assert.Equal(["1e-4"], args.Find("learning_rate")!.Values);
        Assert.Equal(["You are helpful. # not a comment"], args.Find("system")!.Values);
        Assert.Equal(["alpaca", "sharegpt#500"], args.Find("dataset")!.Values);
        Assert.Equal(["q_proj", "v_proj"], args.Find("target_modules")!.Values);
        Assert.True(args.Find("val_dataset")!.IsNull);
        Assert.Equal(["null"], args.Find("quoted_null")!.Values);
        Assert.Equal(3, args.Find("max_new_tokens")!.Line);
        Assert.Equal(file.Path, args.Find("model")!.ConfigFile);
        Assert.Equal([file.Path], args.ConfigFiles);
    }

    [Fact]
    public void JsonScalarsAndLists()
    {
        using var file = new TempConfig("args.json", """
            {
              // comments are allowed
              "model": "Qwen/Qwen3-0.6B",
              "max-new-tokens": 128,
              "learning_rate": 1e-4,
              "stream": false,
              "dataset": ["a", "b"],
              "val_dataset": null,
            }
            """);
        var args = ParsedArgs.Parse(["--config", file.Path]);

        Assert.Equal(["Qwen/Qwen3-0.6B"], args.Find("model")!.Values);
        Assert.Equal(["128"], args.Find("max_new_tokens")!.Values);
        Assert.Equal(["1e-4"], args.Find("learning_rate")!.Values);
        Assert.Equal(["false"], args.Find("stream")!.Values);
        Assert.Equal(["a", "b"], args.Find("dataset")!.Values);
        Assert.True(args.Find("val_dataset")!.IsNull);
        Assert.Equal(5, args.Find("learning_rate")!.Line);
    }

    [Theory]
    [InlineData("train.yaml", "max_new_tokens: 128\nmodel: from-config\n")]
    [InlineData("train.yml", "max_new_tokens: 128\nmodel: from-config\n")]
    [InlineData("train.json", """{"max_new_tokens": 128, "model": "from-config"}""")]
    public void CommandLineOverridesConfig(string fileName, string text)
    {
        using var file = new TempConfig(fileName, text);
        var reader = new OptionReader(ParsedArgs.Parse(["--max_new_tokens", "7", "--config", file.Path]), "infer");

        Assert.Equal(7, reader.Int("max_new_tokens", 0));
        Assert.Equal("from-config", reader.String("model"));
    }

    [Fact]
    public void LaterConfigFileOverridesEarlier()
    {
        using var first = new TempConfig("a.yaml", "model: a\ntemperature: 0.5\n");
        using var second = new TempConfig("b.json", """{"model": "b"}""");
        var reader = new OptionReader(ParsedArgs.Parse(["--config", first.Path, second.Path]), "infer");

        Assert.Equal("b", reader.String("model"));
        Assert.Equal(0.5, reader.Double("temperature", 1));
    }

    [Fact]
    public void NullConfigEntryMeansTheDefault()
    {
        using var file = new TempConfig("c.yaml", "max_new_tokens:\n");
        var reader = new OptionReader(ParsedArgs.Parse(["--config", file.Path]), "infer");
        Assert.Equal(512, reader.Int("max_new_tokens", 512));
        Assert.False(reader.Has("max_new_tokens"));
    }

    [Theory]
    [InlineData("bad.yaml", "model: a\ndataset: [a, b\n", "line 3")]
    [InlineData("bad.yaml", "model: a\nmodel: b\n", "line 2")]
    [InlineData("bad.yaml", "model: a\nlora:\n  rank: 8\n", "line 2")]
    [InlineData("bad.yaml", "- a\n- b\n", "line 1")]
    [InlineData("bad.yaml", "a: 1\nmax-len: 1\nmax_len: 2\n", "line 3")]
    [InlineData("bad.json", "{\n  \"model\": \"a\",\n  \"lora\": {\"rank\": 8}\n}", "line 3")]
    [InlineData("bad.json", "{\n  \"model\": \"a\"\n  \"x\": 1\n}", "line 3")]
    [InlineData("bad.json", "[1, 2]", "line 1")]
    [InlineData("bad.json", "{\"model\": \"a\",\n \"model\": \"b\"}", "line 2")]
    public void MalformedConfigNamesFileAndLine(string fileName, string text, string line)
    {
        using var file = new TempConfig(fileName, text);
        var error = Assert.Throws<UserError>(() => ParsedArgs.Parse(["--config", file.Path]));
        Assert.Contains(file.Path, error.Message);
        Assert.Contains(line, error.Message);
        Assert.DoesNotContain("\n", error.Message);
    }

    [Fact]
    public void MissingConfigFileIsAUserError()
    {
        var error = Assert.Throws<UserError>(() => ParsedArgs.Parse(["--config", "/nonexistent/train.yaml"]));
        Assert.Contains("/nonexistent/train.yaml", error.Message);
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void UnsupportedExtensionIsAUserError()
    {
        using var file = new TempConfig("train.toml", "model = 'a'\n");
        var error = Assert.Throws<UserError>(() => ParsedArgs.Parse(["--config", file.Path]));
        Assert.Contains(".yaml, .yml or .json", error.Message);
    }

    [Fact]
    public void BareConfigFlagIsAUserError()
    {
        Assert.Throws<UserError>(() => ParsedArgs.Parse(["--config"]));
    }

    [Fact]
    public void EmptyYamlFileHasNoFlags()
    {
        using var file = new TempConfig("empty.yaml", "# nothing yet\n");
        Assert.Equal(["config"], ParsedArgs.Parse(["--config", file.Path]).Options.Select(o => o.Name));
    }

    [Fact]
    public void EmptyJsonFileIsAUserError()
    {
        using var file = new TempConfig("empty.json", "\n");
        Assert.Contains("is empty", Assert.Throws<UserError>(() => ParsedArgs.Parse(["--config", file.Path])).Message);
    }
}
