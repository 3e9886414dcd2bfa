using Osprey.Options;

namespace Osprey.Datasets;

/// <summary>Reads ms-swift's <c>--model_name 小黄 'Xiao Huang'</c>: Chinese then English; one value serves both.</summary>
internal sealed class NamePairConverter : IOptionConverter
{
    public OptionKind Kind => OptionKind.List;

    public object? Read(string flag, object value)
    {
        var values = (IReadOnlyList<string>)value;
        return values.Count switch
        {
            0 => ((string?)null, (string?)null),
            1 => (values[0], values[0]),
            2 => (values[0], values[1]),
            _ => throw new OspreyException($"--{flag} takes one or two values (Chinese, then English), got {values.Count}."),
        };
    }

    public string? Show(object? value) =>
        value is ValueTuple<string?, string?> pair && (pair.Item1 ?? pair.Item2) is not null ? $"{pair.Item1} {pair.Item2}".Trim() : null;
}
