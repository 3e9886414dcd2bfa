using System.Globalization;

namespace Osprey.Options;

/// <summary>Reads a list flag of positive integers (<c>--batch_size 1 8 32</c>) into an <c>IReadOnlyList&lt;int&gt;</c>.</summary>
public sealed class PositiveIntegersConverter : IOptionConverter
{
    /// <inheritdoc />
    public OptionKind Kind => OptionKind.List;

    /// <inheritdoc />
    public object? Read(string flag, object value) =>
        ((IReadOnlyList<string>)value).Select(text => int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n : throw new OspreyException($"--{flag} expects positive integers, got '{text}'.")).ToList();

    /// <inheritdoc />
    public string? Show(object? value) =>
        value is IEnumerable<int> list && list.Any() ? string.Join(" ", list.Select(n => n.ToString(CultureInfo.InvariantCulture))) : null;
}
