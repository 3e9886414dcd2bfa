using Osprey.Cli;
using Osprey.Cli.Args;

namespace Osprey.Tests.Cli;

public sealed class OptionReaderTests
{
    public enum TrainType
    {
        Lora,
        Full,
        AllLinear,
    }

    private static OptionReader Reader(params string[] args) => new(ParsedArgs.Parse(args), "infer");

    [Fact]
    public void TypedValues()
    {
        var reader = Reader("--model", "m", "--max_new_tokens", "64", "--seed", "-3", "--total", "5000000000",
            "--temperature", "0.7", "--lr", "1e-4", "--dataset", "a", "b");

        Assert.Equal("m", reader.String("model"));
        Assert.Equal("m", reader.RequiredString("model"));
        Assert.Equal(64, reader.Int("max_new_tokens", 0));
        Assert.Equal(-3, reader.RequiredInt("seed"));
        Assert.Equal(5_000_000_000L, reader.Long("total", 0));
        Assert.Equal(0.7, reader.Double("temperature", 0));
        Assert.Equal(1e-4, reader.RequiredDouble("lr"));
        Assert.Equal(["a", "b"], reader.List("dataset"));
        reader.EnsureNoUnknownFlags();
    }

    [Fact]
    public void DefaultsWhenAbsent()
    {
        var reader = Reader();
        Assert.Null(reader.String("model"));
        Assert.Equal("d", reader.String("model", "d"));
        Assert.Equal(512, reader.Int("max_new_tokens", 512));
        Assert.Null(reader.Int("max_new_tokens"));
        Assert.Equal(7L, reader.Long("total", 7));
        Assert.Equal(1.0, reader.Double("temperature", 1.0));
        Assert.True(reader.Bool("stream", true));
        Assert.Empty(reader.List("dataset"));
        Assert.Equal(["x"], reader.List("dataset", ["x"]));
        Assert.Equal(TrainType.Lora, reader.Enum("train_type", TrainType.Lora));
        Assert.False(reader.Has("model"));
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("TRUE", true)]
    [InlineData("1", true)]
    [InlineData("Yes", true)]
    [InlineData("false", false)]
    [InlineData("0", false)]
    [InlineData("no", false)]
    [InlineData("NO", false)]
    public void BooleanSpellings(string text, bool expected)
    {
        Assert.Equal(expected, Reader("--stream", text).Bool("stream", !expected));
        Assert.Equal(expected, Reader($"--stream={text}").Bool("stream", !expected));
    }

    [Fact]
    public void BareFlagIsTrue()
    {
        Assert.True(Reader("--merge-lora").Bool("merge_lora", false));
    }

    [Fact]
    public void BadBooleanIsAUserError()
    {
        var error = Assert.Throws<UserError>(() => Reader("--stream", "maybe").Bool("stream", false));
        Assert.Equal("--stream expects true or false, got 'maybe'.", error.Message);
    }

    [Fact]
    public void BadIntegerNamesFlagAndValue()
    {
        var error = Assert.Throws<UserError>(() => Reader("--max_new_tokens", "abc").Int("max_new_tokens", 0));
        Assert.Equal("--max_new_tokens expects an integer, got 'abc'.", error.Message);
    }

    [Fact]
    public void IntegerOutOfRangeSaysSo()
    {
        var error = Assert.Throws<UserError>(() => Reader("--max_new_tokens", "99999999999").Int("max_new_tokens", 0));
        Assert.Contains("between", error.Message);
    }

    [Fact]
    public void BadNumberNamesFlagAndValue()
    {
        var error = Assert.Throws<UserError>(() => Reader("--temperature", "hot").Double("temperature", 0));
        Assert.Equal("--temperature expects a number, got 'hot'.", error.Message);
    }

    [Fact]
    public void BadValueFromConfigNamesFileAndLine()
    {
        using var file = new TempConfig("c.yaml", "model: m\nmax_new_tokens: abc\n");
        var error = Assert.Throws<UserError>(() => Reader("--config", file.Path).Int("max_new_tokens", 0));
        Assert.Equal($"--max_new_tokens expects an integer, got 'abc' (from {file.Path} line 2).", error.Message);
    }

    [Fact]
    public void ScalarGivenAListIsAUserError()
    {
        var error = Assert.Throws<UserError>(() => Reader("--model", "a", "b").String("model"));
        Assert.Contains("single value", error.Message);
    }

    [Fact]
    public void ScalarGivenNoValueIsAUserError()
    {
        var error = Assert.Throws<UserError>(() => Reader("--model").String("model"));
        Assert.Contains("--model", error.Message);
    }

    [Fact]
    public void RequiredFlagMissingIsAUserError()
    {
        var reader = Reader();
        Assert.Contains("--model", Assert.Throws<UserError>(() => reader.RequiredString("model")).Message);
        Assert.Throws<UserError>(() => reader.RequiredInt("max_new_tokens"));
        Assert.Throws<UserError>(() => reader.RequiredLong("total"));
        Assert.Throws<UserError>(() => reader.RequiredDouble("temperature"));
        Assert.Throws<UserError>(() => reader.RequiredList("dataset"));
        Assert.Throws<UserError>(() => reader.RequiredEnum<TrainType>("train_type"));
    }

    [Theory]
    [InlineData("lora", TrainType.Lora)]
    [InlineData("FULL", TrainType.Full)]
    [InlineData("all_linear", TrainType.AllLinear)]
    [InlineData("all-linear", TrainType.AllLinear)]
    [InlineData("AllLinear", TrainType.AllLinear)]
    public void EnumsMatchIgnoringCaseAndSeparators(string text, TrainType expected)
    {
        Assert.Equal(expected, Reader("--train_type", text).Enum("train_type", TrainType.Full == expected ? TrainType.Lora : TrainType.Full));
    }

    [Fact]
    public void BadEnumListsChoicesAndSuggests()
    {
        var error = Assert.Throws<UserError>(() => Reader("--train_type", "lorra").Enum("train_type", TrainType.Full));
        Assert.Equal("--train_type expects one of lora, full, all_linear; got 'lorra' (did you mean lora?).", error.Message);
    }

    [Fact]
    public void EnumRejectsNumbers()
    {
        Assert.Throws<UserError>(() => Reader("--train_type", "1").Enum("train_type", TrainType.Lora));
    }

    [Fact]
    public void UnknownFlagSuggestsClosestKnownFlag()
    {
        var reader = Reader("--max_new_token", "5");
        reader.Int("max_new_tokens", 512);
        reader.String("model");
        var error = Assert.Throws<UserError>(reader.EnsureNoUnknownFlags);
        Assert.Equal("osprey infer does not know the flag --max_new_token (did you mean --max_new_tokens?); run 'osprey infer --help' to see its flags.", error.Message);
    }

    [Fact]
    public void UnknownKebabFlagIsQuotedAsWritten()
    {
        var reader = Reader("--max-new-token", "5");
        reader.Int("max_new_tokens", 512);
        var error = Assert.Throws<UserError>(reader.EnsureNoUnknownFlags);
        Assert.Contains("--max-new-token (did you mean --max_new_tokens?)", error.Message);
    }

    [Fact]
    public void UnknownFlagFromConfigNamesTheFile()
    {
        using var file = new TempConfig("c.yaml", "model: m\ntemprature: 0.3\n");
        var reader = Reader("--config", file.Path);
        reader.String("model");
        reader.Double("temperature", 1);
        var error = Assert.Throws<UserError>(reader.EnsureNoUnknownFlags);
        Assert.Contains($"'temprature' from config file {file.Path} line 2 (did you mean temperature?)", error.Message);
    }

    [Fact]
    public void SeveralUnknownFlagsAreAllNamed()
    {
        var reader = Reader("--foo", "1", "--bar", "2");
        var error = Assert.Throws<UserError>(reader.EnsureNoUnknownFlags);
        Assert.Contains("--foo", error.Message);
        Assert.Contains("--bar", error.Message);
    }

    [Fact]
    public void AcceptedAndGlobalFlagsAreNotUnknown()
    {
        using var file = new TempConfig("c.json", """{"lora_rank": 8}""");
        var reader = Reader("--config", file.Path, "--debug");
        reader.Accept("lora-rank");
        reader.EnsureNoUnknownFlags();
        Assert.True(reader.CheckedUnknownFlags);
    }

    [Fact]
    public void KebabNamesInReaderCallsWork()
    {
        var reader = Reader("--max_new_tokens", "3");
        Assert.Equal(3, reader.Int("max-new-tokens", 0));
        reader.EnsureNoUnknownFlags();
    }
}
