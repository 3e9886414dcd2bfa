using Osprey.Io;

namespace Osprey.Tests.Io;

public sealed class SafetensorsParseSizeTests
{
    [Theory]
    [InlineData("5GB", 5_000_000_000L)]
    [InlineData("500MB", 500_000_000L)]
    [InlineData("100KB", 100_000L)]
    [InlineData("2GiB", 2L << 30)]
    [InlineData("3MiB", 3L << 20)]
    [InlineData("7KiB", 7L << 10)]
    [InlineData("1000", 1000L)]
    [InlineData("5gb", 5_000_000_000L)]
    [InlineData("2gib", 2L << 30)]
    [InlineData("10 GB", 10_000_000_000L)]
    [InlineData(" 4MB ", 4_000_000L)]
    public void ParsesTheAcceptedForms(string text, long expected)
    {
        Assert.Equal(expected, SafetensorsWriter.ParseSize(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("GB")]
    [InlineData("5TB")]
    [InlineData("1.5GB")]
    [InlineData("-5GB")]
    [InlineData("0")]
    [InlineData("5 G B")]
    [InlineData("5G")]
    [InlineData("five GB")]
    [InlineData("99999999999999999999")]
    [InlineData("9999999999999GiB")]
    public void RefusesAnythingElseNamingTheValue(string text)
    {
        var error = Assert.Throws<ArgumentException>(() => SafetensorsWriter.ParseSize(text));
        Assert.Contains($"'{text}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("GiB", error.Message, StringComparison.Ordinal);
    }
}
