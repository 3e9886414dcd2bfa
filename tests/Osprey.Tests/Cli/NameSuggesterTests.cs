using Osprey.Cli;

namespace Osprey.Tests.Cli;

public sealed class NameSuggesterTests
{
    private static readonly string[] Flags = ["model", "max_new_tokens", "max_length", "temperature", "lora_rank", "lora_alpha"];

    [Theory]
    [InlineData("max_new_token", "max_new_tokens")]
    [InlineData("lora_rnak", "lora_rank")]
    [InlineData("Temperature", "temperature")]
    [InlineData("new_tokens", "max_new_tokens")]
    [InlineData("modle", "model")]
    public void SuggestsTheIntendedName(string typed, string expected)
    {
        Assert.Equal(expected, NameSuggester.Closest(typed, Flags));
    }

    [Theory]
    [InlineData("xyz")]
    [InlineData("dataset")]
    public void StaysQuietWhenNothingIsClose(string typed)
    {
        Assert.Null(NameSuggester.Closest(typed, Flags));
    }

    [Fact]
    public void TranspositionIsOneEdit()
    {
        Assert.Equal(1, NameSuggester.Distance("ab", "ba"));
        Assert.Equal(3, NameSuggester.Distance("kitten", "sitting"));
    }
}
