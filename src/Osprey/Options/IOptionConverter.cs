namespace Osprey.Options;

/// <summary>
/// Reads a flag whose property type is richer than its text (a JSON object of column renames, a Chinese/English name
/// pair). Named by <see cref="OptionAttribute.Converter"/>; needs a parameterless constructor.
/// </summary>
public interface IOptionConverter
{
    /// <summary>How the flag is typed: <see cref="OptionKind.String"/> (one value) or <see cref="OptionKind.List"/> (several).</summary>
    OptionKind Kind { get; }

    /// <summary>The property value of <paramref name="value"/> (a string or a list of strings, by <see cref="Kind"/>).</summary>
    /// <exception cref="OspreyException">The text does not parse; the message names <paramref name="flag"/>.</exception>
    object? Read(string flag, object value);

    /// <summary>The value as text (help, args.json); null when unset.</summary>
    string? Show(object? value);
}
