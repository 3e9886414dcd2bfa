namespace Osprey.Cli.Args;

/// <summary>
/// Reads a <c>--config</c> file: a flat mapping of flag name to a scalar or a list of scalars, in YAML or JSON.
/// Its entries are defaults that command-line flags override (ms-swift's <c>--config</c> behaves the same).
/// </summary>
internal static class ConfigFileLoader
{
    public static IReadOnlyList<ParsedOption> Load(string path)
    {
        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension is not (".yaml" or ".yml" or ".json"))
        {
            throw new UserError($"Config file '{path}' must end in .yaml, .yml or .json so osprey knows how to read it.");
        }

        if (!File.Exists(path))
        {
            throw new UserError(Directory.Exists(path)
                ? $"Config file '{path}' is a directory; give --config the path of a .yaml, .yml or .json file."
                : $"Config file '{path}' does not exist; check the path given to --config (relative paths start at {Directory.GetCurrentDirectory()}).");
        }

        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"Config file '{path}' cannot be read ({e.Message}); check its permissions.", e);
        }

        var entries = extension == ".json" ? JsonConfigReader.Read(path, text) : YamlConfigReader.Read(path, text);
        Validate(path, entries);
        return entries;
    }

    /// <summary>Checks the rules both formats share, so YAML and JSON configs fail the same way.</summary>
    private static void Validate(string path, IReadOnlyList<ParsedOption> entries)
    {
        var firstLine = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            if (!FlagName.IsValid(entry.WrittenName))
            {
                throw new UserError($"Config file {path} line {entry.Line} has the key '{entry.WrittenName}', which is not a flag name; keys are flag names without dashes, like max_new_tokens.");
            }

            if (entry.Name == ParsedArgs.ConfigFlag)
            {
                throw new UserError($"Config file {path} line {entry.Line} sets 'config', but a config file cannot load another; pass both with --config {path} other.yaml.");
            }

            if (!firstLine.TryAdd(entry.Name, entry.Line))
            {
                throw new UserError($"Config file {path} line {entry.Line} sets '{entry.WrittenName}' again (first set on line {firstLine[entry.Name]}); keep one of them.");
            }
        }
    }
}
