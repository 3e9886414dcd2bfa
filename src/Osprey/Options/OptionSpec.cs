using System.Reflection;

namespace Osprey.Options;

/// <summary>
/// One declared flag, read from an <see cref="OptionAttribute"/>: what the command line parser, <c>--help</c>,
/// <c>--config</c> files, args.json and the web UI's forms all use.
/// </summary>
public sealed record OptionSpec
{
    /// <summary>The flag's name, snake_case.</summary>
    public required string Name { get; init; }

    /// <summary>Other accepted names.</summary>
    public IReadOnlyList<string> Aliases { get; init; } = [];

    /// <summary>How the value is parsed and shown.</summary>
    public required OptionKind Kind { get; init; }

    /// <summary>One line of help.</summary>
    public required string Help { get; init; }

    /// <summary>The value placeholder in help (<c>N</c>, <c>X</c>, <c>B</c>, <c>DIR...</c>).</summary>
    public required string Placeholder { get; init; }

    /// <summary>The default as shown to people (<c>8</c>, <c>cosine</c>, <c>1e-4 for LoRA, 1e-5 for full</c>); null when there is none.</summary>
    public string? DefaultText { get; init; }

    /// <summary>The default value itself (null when it is decided from other options or absent).</summary>
    public object? Default { get; init; }

    /// <summary>The accepted values of a <see cref="OptionKind.Choice"/> flag, as typed.</summary>
    public IReadOnlyList<string> Choices { get; init; } = [];

    /// <summary>Shown among the first fields of a form.</summary>
    public bool Common { get; init; }

    /// <summary>A credential, left out of <see cref="OptionSet.ToJson"/>.</summary>
    public bool Secret { get; init; }

    /// <summary>Reads values of a property type the kinds cannot (see <see cref="OptionAttribute.Converter"/>).</summary>
    public IOptionConverter? Converter { get; init; }

    /// <summary>The properties from the root options record down to this flag's property.</summary>
    internal IReadOnlyList<PropertyInfo> Path { get; init; } = [];

    /// <summary>The property's type without Nullable&lt;&gt;.</summary>
    internal Type ValueType => Nullable.GetUnderlyingType(Path[^1].PropertyType) ?? Path[^1].PropertyType;

    /// <summary>True when <paramref name="name"/> (snake_case or kebab-case) is this flag's name or an alias.</summary>
    public bool Matches(string name)
    {
        var key = name.Replace('-', '_');
        return Name == key || Aliases.Contains(key);
    }
}
