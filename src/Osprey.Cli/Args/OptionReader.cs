using System.Globalization;
using System.Text;
using Osprey.Options;

namespace Osprey.Cli.Args;

/// <summary>
/// Typed access to a verb's flags. Every name a verb asks for becomes a known flag, so after reading, the verb
/// calls <see cref="EnsureNoUnknownFlags"/> and a misspelt flag is an error instead of being silently ignored.
/// </summary>
/// <remarks>
/// Names are given without dashes in snake_case (<c>"max_new_tokens"</c>); kebab-case works too. A flag that is
/// absent, or set to null in a config file, yields the default. A value that does not parse is a
/// <see cref="UserError"/> naming the flag, the value and, for config entries, the file and line.
/// </remarks>
public sealed class OptionReader
{
    // Flags every verb accepts: OspreyApp and ParsedArgs act on them, so verbs need not read them.
    private static readonly string[] GlobalFlags = [ParsedArgs.ConfigFlag, "debug", "help"];

    private readonly HashSet<string> _known = new(StringComparer.Ordinal);
    private readonly HashSet<string> _noticed = new(StringComparer.Ordinal);

    /// <summary>Creates a reader over <paramref name="args"/> for the verb <paramref name="commandName"/>.</summary>
    public OptionReader(ParsedArgs args, string commandName)
        : this(args, commandName, TextWriter.Null)
    {
    }

    /// <summary>
    /// Creates a reader over <paramref name="args"/> for the verb <paramref name="commandName"/> that prints the notice
    /// of each given no-effect flag (<see cref="NoEffectFlagAttribute"/>) to <paramref name="notices"/>.
    /// </summary>
    public OptionReader(ParsedArgs args, string commandName, TextWriter notices)
    {
        Args = args;
        CommandName = commandName;
        Notices = notices;
        _known.UnionWith(GlobalFlags);
    }

    /// <summary>Where the notices of no-effect flags go (stderr in <c>osprey</c>).</summary>
    public TextWriter Notices { get; }

    /// <summary>The parsed flags behind this reader.</summary>
    public ParsedArgs Args { get; }

    /// <summary>The verb the flags belong to, named in error messages.</summary>
    public string CommandName { get; }

    /// <summary>True once <see cref="EnsureNoUnknownFlags"/> has run.</summary>
    public bool CheckedUnknownFlags { get; private set; }

    /// <summary>
    /// Declares flags the verb accepts but has not read in this run (say, LoRA flags when training fully), so
    /// they are not reported as unknown.
    /// </summary>
    public void Accept(params string[] names)
    {
        foreach (var name in names)
        {
            _known.Add(FlagName.Normalize(name));
        }
    }

    /// <summary>True when the flag was given with a value (a config null does not count).</summary>
    public bool Has(string name) => Lookup(name) is not null;

    /// <summary>The flag's single value, or null when absent.</summary>
    public string? String(string name) => Single(name, "a value")?.Value;

    /// <summary>The flag's single value, or <paramref name="defaultValue"/> when absent.</summary>
    public string String(string name, string defaultValue) => String(name) ?? defaultValue;

    /// <summary>The flag's single value; a <see cref="UserError"/> when absent.</summary>
    public string RequiredString(string name) => String(name) ?? throw Missing(name, "<value>");

    /// <summary>The flag as a 32-bit integer, or null when absent.</summary>
    public int? Int(string name) => ParseInteger(name, int.MinValue, int.MaxValue) is { } value ? (int)value : null;

    /// <summary>The flag as a 32-bit integer, or <paramref name="defaultValue"/> when absent.</summary>
    public int Int(string name, int defaultValue) => Int(name) ?? defaultValue;

    /// <summary>The flag as a 32-bit integer; a <see cref="UserError"/> when absent.</summary>
    public int RequiredInt(string name) => Int(name) ?? throw Missing(name, "N");

    /// <summary>The flag as a 64-bit integer, or null when absent.</summary>
    public long? Long(string name) => ParseInteger(name, long.MinValue, long.MaxValue);

    /// <summary>The flag as a 64-bit integer, or <paramref name="defaultValue"/> when absent.</summary>
    public long Long(string name, long defaultValue) => Long(name) ?? defaultValue;

    /// <summary>The flag as a 64-bit integer; a <see cref="UserError"/> when absent.</summary>
    public long RequiredLong(string name) => Long(name) ?? throw Missing(name, "N");

    /// <summary>The flag as a number (<c>0.7</c>, <c>1e-4</c>), or null when absent.</summary>
    public double? Double(string name)
    {
        if (Single(name, "a number") is not { } single)
        {
            return null;
        }

        var (text, option) = single;

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new UserError($"{FlagName.Display(option.Name)} expects a number, got '{text}'{option.OriginSuffix}.");
    }

    /// <summary>The flag as a number, or <paramref name="defaultValue"/> when absent.</summary>
    public double Double(string name, double defaultValue) => Double(name) ?? defaultValue;

    /// <summary>The flag as a number; a <see cref="UserError"/> when absent.</summary>
    public double RequiredDouble(string name) => Double(name) ?? throw Missing(name, "X");

    /// <summary>
    /// The flag as a boolean, or null when absent. A bare flag (<c>--stream</c>) is true; values are
    /// true/false, 1/0 or yes/no in any case.
    /// </summary>
    public bool? Bool(string name)
    {
        var option = Lookup(name);
        if (option is null)
        {
            return null;
        }

        if (option.IsBare)
        {
            return true;
        }

        var text = Single(name, "true or false")?.Value ?? string.Empty;
        return text.ToLowerInvariant() switch
        {
            "true" or "1" or "yes" => true,
            "false" or "0" or "no" => false,
            _ => throw new UserError($"{FlagName.Display(option.Name)} expects true or false, got '{text}'{option.OriginSuffix}."),
        };
    }

    /// <summary>The flag as a boolean, or <paramref name="defaultValue"/> when absent.</summary>
    public bool Bool(string name, bool defaultValue) => Bool(name) ?? defaultValue;

    /// <summary>
    /// The options record <typeparamref name="T"/> filled from its declared flags (<see cref="OptionSet"/>): each flag
    /// given (by its name or an alias) is parsed by its declared kind, the rest keep their declared defaults. Every
    /// declared name becomes a known flag.
    /// </summary>
    /// <exception cref="UserError">A value does not parse or is not one of the flag's choices.</exception>
    public T Bind<T>() where T : notnull
    {
        var set = OptionSet.For<T>();
        // Accepted so a script written for ms-swift runs; each one given (even as a config null) earns one notice, in
        // the order the user gave them.
        Accept([.. set.NoEffect.Select(flag => flag.Name)]);
        foreach (var given in Args.Options)
        {
            if (set.FindNoEffect(given.Name) is { } flag && _noticed.Add(flag.Name))
            {
                Notices.WriteLine(flag.Notice(given.WrittenName));
            }
        }

        try
        {
            return set.Bind<T>(spec =>
            {
                var names = spec.Aliases.Prepend(spec.Name).ToList();
                Accept([.. names]);
                var name = names.FirstOrDefault(Has);
                if (name is null) return null;
                return spec.Kind switch
                {
                    OptionKind.Int => Int(name),
                    OptionKind.Long => Long(name),
                    OptionKind.Double => Double(name),
                    OptionKind.Bool => Bool(name),
                    OptionKind.List => List(name),
                    _ => String(name),
                };
            });
        }
        catch (OspreyException e) when (e is not UserError)
        {
            // A choice that does not parse names its flag; add where the value came from when it was a config file.
            var origin = set.Options.Select(o => Lookup(o.Name)).FirstOrDefault(o => o is not null && e.Message.StartsWith($"--{o.Name} ", StringComparison.Ordinal))?.OriginSuffix;
            throw new UserError(string.IsNullOrEmpty(origin) ? e.Message : e.Message.TrimEnd('.') + origin + ".", e);
        }
    }

    /// <summary>The flag's values (<c>--dataset a b c</c>, or a list in a config file); empty when absent.</summary>
    public IReadOnlyList<string> List(string name) => List(name, []);

    /// <summary>The flag's values, or <paramref name="defaultValue"/> when absent.</summary>
    public IReadOnlyList<string> List(string name, IReadOnlyList<string> defaultValue)
    {
        var option = Lookup(name);
        if (option is null)
        {
            return defaultValue;
        }

        if (option.IsBare)
        {
            throw new UserError($"{FlagName.Display(option.Name)} expects one or more values, as in {FlagName.Display(option.Name)} a b.");
        }

        return option.Values;
    }

    /// <summary>The flag's values; a <see cref="UserError"/> when absent or empty.</summary>
    public IReadOnlyList<string> RequiredList(string name)
    {
        var values = List(name);
        return values.Count > 0 ? values : throw Missing(name, "<value>...");
    }

    /// <summary>
    /// The flag as a member of <typeparamref name="T"/>, or null when absent. Values match member names
    /// ignoring case, '_' and '-' (<c>all_linear</c>, <c>all-linear</c> and <c>AllLinear</c> are one member).
    /// </summary>
    public T? Enum<T>(string name)
        where T : struct, System.Enum
    {
        if (Single(name, "one of " + string.Join(", ", EnumNames<T>())) is not { } single)
        {
            return null;
        }

        var (text, option) = single;

        var key = EnumKey(text);
        foreach (var member in System.Enum.GetValues<T>())
        {
            if (EnumKey(member.ToString()) == key)
            {
                return member;
            }
        }

        var names = EnumNames<T>();
        var guess = NameSuggester.Closest(text, names);
        var hint = guess is null ? string.Empty : $" (did you mean {guess}?)";
        throw new UserError($"{FlagName.Display(option.Name)} expects one of {string.Join(", ", names)}; got '{text}'{option.OriginSuffix}{hint}.");
    }

    /// <summary>The flag as a member of <typeparamref name="T"/>, or <paramref name="defaultValue"/> when absent.</summary>
    public T Enum<T>(string name, T defaultValue)
        where T : struct, System.Enum => Enum<T>(name) ?? defaultValue;

    /// <summary>The flag as a member of <typeparamref name="T"/>; a <see cref="UserError"/> when absent.</summary>
    public T RequiredEnum<T>(string name)
        where T : struct, System.Enum => Enum<T>(name) ?? throw Missing(name, string.Join("|", EnumNames<T>()));

    /// <summary>
    /// Throws a <see cref="UserError"/> naming every flag (from the command line or a config file) that the
    /// verb never asked for, with the closest known flag as a suggestion. Call it after reading all flags and
    /// before doing work, so a typo fails in a second rather than after an hour of training with a default.
    /// </summary>
    public void EnsureNoUnknownFlags()
    {
        CheckedUnknownFlags = true;
        var unknown = Args.Options.Where(option => !_known.Contains(option.Name)).ToList();
        if (unknown.Count == 0)
        {
            return;
        }

        var parts = unknown.Select(option =>
        {
            var guess = NameSuggester.Closest(option.Name, _known);
            if (option.FromCommandLine)
            {
                return FlagName.Display(option.WrittenName) + (guess is null ? string.Empty : $" (did you mean {FlagName.Display(guess)}?)");
            }

            return $"'{option.WrittenName}' from config file {option.ConfigFile} line {option.Line}" + (guess is null ? string.Empty : $" (did you mean {guess}?)");
        }).ToList();

        var list = parts.Count == 1 ? parts[0] : string.Join(", ", parts[..^1]) + " or " + parts[^1];
        var noun = parts.Count == 1 ? "flag" : "flags";
        throw new UserError($"osprey {CommandName} does not know the {noun} {list}; run 'osprey {CommandName} --help' to see its flags.");
    }

    private ParsedOption? Lookup(string name)
    {
        var canonical = FlagName.Normalize(name);
        _known.Add(canonical);
        var option = Args.Find(canonical);
        return option is null || option.IsNull ? null : option;
    }

    /// <summary>The one value of a scalar flag, or null when absent; <paramref name="expected"/> describes it in errors.</summary>
    private (string Value, ParsedOption Option)? Single(string name, string expected)
    {
        var option = Lookup(name);
        if (option is null)
        {
            return null;
        }

        var flag = FlagName.Display(option.Name);
        if (option.IsBare)
        {
            throw new UserError($"{flag} expects {expected}, but none was given; write {flag} <value>.");
        }

        if (option.Values.Count != 1)
        {
            var got = option.Values.Count == 0 ? "an empty list" : $"{option.Values.Count} values ({string.Join(" ", option.Values.Select(v => $"'{v}'"))})";
            throw new UserError($"{flag} expects a single value, got {got}{option.OriginSuffix}; give one, quoted if it contains spaces.");
        }

        return (option.Values[0], option);
    }

    private long? ParseInteger(string name, long min, long max)
    {
        if (Single(name, "an integer") is not { } single)
        {
            return null;
        }

        var (text, option) = single;

        var flag = FlagName.Display(option.Name);
        if (long.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowLeadingWhite | NumberStyles.AllowTrailingWhite, CultureInfo.InvariantCulture, out var value)
            && value >= min && value <= max)
        {
            return value;
        }

        // Digits that merely do not fit deserve a different fix than letters do.
        var trimmed = text.Trim().TrimStart('+', '-');
        if (trimmed.Length > 0 && trimmed.All(char.IsAsciiDigit))
        {
            throw new UserError($"{flag} expects an integer between {min} and {max}, got '{text}'{option.OriginSuffix}.");
        }

        throw new UserError($"{flag} expects an integer, got '{text}'{option.OriginSuffix}.");
    }

    private UserError Missing(string name, string placeholder)
    {
        var flag = FlagName.Display(FlagName.Normalize(name));
        return new UserError($"osprey {CommandName} needs {flag}; add {flag} {placeholder} to the command line or '{FlagName.Normalize(name)}:' to a --config file.");
    }

    private static string EnumKey(string text) => text.Replace("_", string.Empty).Replace("-", string.Empty).ToLowerInvariant();

    /// <summary>Member names in snake_case, the spelling ms-swift users type (<c>AllLinear</c> -> <c>all_linear</c>).</summary>
    private static List<string> EnumNames<T>()
        where T : struct, System.Enum
    {
        var names = new List<string>();
        foreach (var member in System.Enum.GetNames<T>())
        {
            var snake = new StringBuilder();
            for (var i = 0; i < member.Length; i++)
            {
                if (i > 0 && char.IsUpper(member[i]) && (char.IsLower(member[i - 1]) || char.IsDigit(member[i - 1])))
                {
                    snake.Append('_');
                }

                snake.Append(char.ToLowerInvariant(member[i]));
            }

            names.Add(snake.ToString());
        }

        return names;
    }
}
