namespace Osprey.Cli.Args;

/// <summary>
/// The flags after the verb, merged with the defaults of any <c>--config</c> files: what the user asked for,
/// untyped. Verbs read it through <see cref="OptionReader"/>.
/// </summary>
/// <remarks>
/// Forms: <c>--name value</c>, <c>--name=value</c>, <c>--name v1 v2 v3</c> (a list: the non-flag tokens that
/// follow), and bare <c>--name</c> (boolean true). Only tokens starting with <c>--</c> are flags, so values such
/// as <c>-1</c> need no quoting. A flag given twice keeps its last value, as argparse (and so ms-swift) does.
/// </remarks>
public sealed class ParsedArgs
{
    /// <summary>The flag that names config files; it is consumed here, never by verbs.</summary>
    public const string ConfigFlag = "config";

    private readonly OrderedDictionary<string, ParsedOption> _options;

    private ParsedArgs(OrderedDictionary<string, ParsedOption> options, IReadOnlyList<string> configFiles)
    {
        _options = options;
        ConfigFiles = configFiles;
    }

    /// <summary>
    /// Every flag in effect: command-line flags in the order typed, then config entries that the command line
    /// did not override, in file order.
    /// </summary>
    public IReadOnlyList<ParsedOption> Options => [.. _options.Values];

    /// <summary>The config files read, in the order given; later files override earlier ones.</summary>
    public IReadOnlyList<string> ConfigFiles { get; }

    /// <summary>Parses the arguments after the verb and loads the <c>--config</c> files they name.</summary>
    /// <exception cref="UserError">A malformed argument, or a config file that is missing or malformed.</exception>
    public static ParsedArgs Parse(IReadOnlyList<string> args)
    {
        var commandLine = ParseCommandLine(args);
        var configFiles = new List<string>();
        var merged = new OrderedDictionary<string, ParsedOption>(StringComparer.Ordinal);

        if (commandLine.TryGetValue(ConfigFlag, out var config))
        {
            if (config.Values.Count == 0)
            {
                throw new UserError("--config expects the path of a .yaml, .yml or .json file, as in --config train.yaml.");
            }

            foreach (var path in config.Values)
            {
                configFiles.Add(path);
                foreach (var entry in ConfigFileLoader.Load(path))
                {
                    // A later file overrides an earlier one, but the flag keeps its first position in the order.
                    merged[entry.Name] = entry;
                }
            }
        }

        // Command-line flags go first so that error reports follow what the user typed.
        var result = new OrderedDictionary<string, ParsedOption>(StringComparer.Ordinal);
        foreach (var (name, option) in commandLine)
        {
            result[name] = option;
        }

        foreach (var (name, option) in merged)
        {
            result.TryAdd(name, option);
        }

        return new ParsedArgs(result, configFiles);
    }

    /// <summary>The flag called <paramref name="name"/> (snake- or kebab-case, no dashes), or null if not given.</summary>
    public ParsedOption? Find(string name) => _options.GetValueOrDefault(FlagName.Normalize(name));

    private static OrderedDictionary<string, ParsedOption> ParseCommandLine(IReadOnlyList<string> args)
    {
        var options = new OrderedDictionary<string, ParsedOption>(StringComparer.Ordinal);
        var i = 0;
        while (i < args.Count)
        {
            var token = args[i];
            if (!IsFlag(token))
            {
                throw StrayArgument(token, i > 0 ? args[i - 1] : null);
            }

            var body = token[2..];
            var equals = body.IndexOf('=');
            var written = equals >= 0 ? body[..equals] : body;
            if (!FlagName.IsValid(written))
            {
                throw new UserError($"'{token}' is not a valid flag; flag names use letters, digits, '_' and '-', as in --max_new_tokens 512.");
            }

            var name = FlagName.Normalize(written);
            i++;
            if (equals >= 0)
            {
                // Everything after the first '=' is the value, verbatim, so values that start with "--" can be given.
                options.Remove(name);
                options.Add(name, new ParsedOption(name, written, [body[(equals + 1)..]], isBare: false, isNull: false, configFile: null, line: 0));
                continue;
            }

            var values = new List<string>();
            while (i < args.Count && !IsFlag(args[i]))
            {
                if (args[i] == "--")
                {
                    throw new UserError($"A bare '--' after {token} is not understood; give flags as --name value and values that start with '--' as --name=value.");
                }

                values.Add(args[i]);
                i++;
            }

            // Remove first so a repeated flag moves to its last position, matching "last one wins".
            options.Remove(name);
            options.Add(name, new ParsedOption(name, written, values, isBare: values.Count == 0, isNull: false, configFile: null, line: 0));
        }

        return options;
    }

    private static bool IsFlag(string token) => token.Length > 2 && token.StartsWith("--", StringComparison.Ordinal);

    private static UserError StrayArgument(string token, string? previous)
    {
        if (token == "--")
        {
            return new UserError("A bare '--' is not understood; give flags as --name value and values that start with '--' as --name=value.");
        }

        if (token.Length > 1 && token[0] == '-' && !double.TryParse(token, System.Globalization.CultureInfo.InvariantCulture, out _))
        {
            return new UserError($"'{token}' is not a flag; flags start with two dashes, as in -{token}.");
        }

        if (previous is not null && previous.Contains('='))
        {
            var name = previous[..previous.IndexOf('=')];
            return new UserError($"'{token}' follows {previous}, which already holds its value; to give a list write {name} {previous[(previous.IndexOf('=') + 1)..]} {token}.");
        }

        return new UserError($"'{token}' is not a flag; every value belongs to a flag, as in --model {token}.");
    }
}
