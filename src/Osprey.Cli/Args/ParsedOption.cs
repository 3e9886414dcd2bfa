namespace Osprey.Cli.Args;

/// <summary>
/// One flag as given on the command line or in a config file, before any verb has said what type it is.
/// </summary>
public sealed class ParsedOption
{
    internal ParsedOption(string name, string writtenName, IReadOnlyList<string> values, bool isBare, bool isNull, string? configFile, int line)
    {
        Name = name;
        WrittenName = writtenName;
        Values = values;
        IsBare = isBare;
        IsNull = isNull;
        ConfigFile = configFile;
        Line = line;
    }

    /// <summary>The canonical snake_case name, without dashes (<c>max_new_tokens</c>).</summary>
    public string Name { get; }

    /// <summary>The name as the user spelled it (perhaps kebab-case), so messages quote what they wrote.</summary>
    public string WrittenName { get; }

    /// <summary>The values in order: one for a scalar, several for a list, none for a bare flag or null.</summary>
    public IReadOnlyList<string> Values { get; }

    /// <summary>True for a flag written with no value (<c>--stream</c>), which reads as boolean true.</summary>
    public bool IsBare { get; }

    /// <summary>
    /// True for a config entry set to null (<c>key: ~</c>, <c>key:</c>, JSON <c>null</c>): ms-swift configs use
    /// it to mean "the default", so readers treat it as absent.
    /// </summary>
    public bool IsNull { get; }

    /// <summary>The config file the flag came from, or null when it came from the command line.</summary>
    public string? ConfigFile { get; }

    /// <summary>The 1-based line in <see cref="ConfigFile"/>; 0 for the command line.</summary>
    public int Line { get; }

    /// <summary>True when the flag was typed on the command line rather than read from a config file.</summary>
    public bool FromCommandLine => ConfigFile is null;

    /// <summary>Where the flag came from, for the end of an error message: "" or " (from cfg.yaml line 3)".</summary>
    internal string OriginSuffix => FromCommandLine ? string.Empty : $" (from {ConfigFile} line {Line})";
}
