using Osprey.Cli;
using Osprey.Cli.Args;

namespace Osprey.Tests.Cli;

public sealed class ParsedArgsTests
{
    [Fact]
    public void SpaceSeparatedValue()
    {
        var option = ParsedArgs.Parse(["--model", "Qwen/Qwen3-0.6B"]).Find("model");
        Assert.NotNull(option);
        Assert.Equal(["Qwen/Qwen3-0.6B"], option.Values);
        Assert.True(option.FromCommandLine);
    }

    [Fact]
    public void EqualsValueKeepsEverythingAfterTheFirstEquals()
    {
        var args = ParsedArgs.Parse(["--system=a=b", "--stop=--end"]);
        Assert.Equal(["a=b"], args.Find("system")!.Values);
        Assert.Equal(["--end"], args.Find("stop")!.Values);
    }

    [Fact]
    public void EmptyEqualsValueIsAnEmptyString()
    {
        Assert.Equal([string.Empty], ParsedArgs.Parse(["--system="]).Find("system")!.Values);
    }

    [Fact]
    public void ConsecutiveTokensFormAList()
    {
        var args = ParsedArgs.Parse(["--dataset", "a", "b", "c", "--lora_rank", "8"]);
        Assert.Equal(["a", "b", "c"], args.Find("dataset")!.Values);
        Assert.Equal(["8"], args.Find("lora_rank")!.Values);
    }

    [Fact]
    public void BareFlagHasNoValues()
    {
        var option = ParsedArgs.Parse(["--stream", "--model", "m"]).Find("stream");
        Assert.NotNull(option);
        Assert.True(option.IsBare);
        Assert.Empty(option.Values);
    }

    [Fact]
    public void NegativeNumbersAreValuesNotFlags()
    {
        Assert.Equal(["-1"], ParsedArgs.Parse(["--seed", "-1"]).Find("seed")!.Values);
    }

    [Fact]
    public void KebabCaseIsTheSameFlagAsSnakeCase()
    {
        var args = ParsedArgs.Parse(["--max-new-tokens", "64"]);
        var option = args.Find("max_new_tokens");
        Assert.NotNull(option);
        Assert.Equal("max_new_tokens", option.Name);
        Assert.Equal("max-new-tokens", option.WrittenName);
        Assert.Same(option, args.Find("max-new-tokens"));
    }

    [Fact]
    public void RepeatedFlagKeepsTheLastValue()
    {
        var args = ParsedArgs.Parse(["--max_new_tokens", "1", "--max-new-tokens", "2"]);
        Assert.Equal(["2"], args.Find("max_new_tokens")!.Values);
        Assert.Single(args.Options);
    }

    [Fact]
    public void AbsentFlagIsNull()
    {
        Assert.Null(ParsedArgs.Parse([]).Find("model"));
    }

    [Theory]
    [InlineData("Qwen/Qwen3-0.6B", "--model Qwen/Qwen3-0.6B")]
    [InlineData("-model", "--model")]
    [InlineData("--", "'--'")]
    [InlineData("--max new", "not a valid flag")]
    public void StrayTokensAreUserErrors(string token, string expected)
    {
        var error = Assert.Throws<UserError>(() => ParsedArgs.Parse([token, "x"]));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void TokenAfterEqualsFormIsAnError()
    {
        var error = Assert.Throws<UserError>(() => ParsedArgs.Parse(["--dataset=a", "b"]));
        Assert.Contains("--dataset a b", error.Message);
    }
}
