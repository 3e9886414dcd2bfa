namespace Osprey.Cli.Args;

/// <summary>Spelling rules for flag names, shared by the command line and config files.</summary>
internal static class FlagName
{
    /// <summary>
    /// The canonical snake_case form. ms-swift's flags are snake_case, but kebab-case is what most other
    /// tools use, so both spellings name the same flag.
    /// </summary>
    public static string Normalize(string name) => name.Replace('-', '_');

    /// <summary>Letters, digits, '_' and '-', starting with a letter or digit.</summary>
    public static bool IsValid(string name) =>
        name.Length > 0
        && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');

    /// <summary>How a flag is shown in messages: as the user would type it.</summary>
    public static string Display(string name) => "--" + name;
}
