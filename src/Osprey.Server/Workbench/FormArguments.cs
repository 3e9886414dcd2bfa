using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Server.Workbench;

/// <summary>
/// A filled form turned into the words after <c>osprey</c>: <c>[verb, --flag, value, ...]</c>. The values are bound by
/// <see cref="OptionSet.BindStrings{T}"/> first, so a bad value or an unknown flag is refused with the command line's
/// own message, and every path-valued flag must lie under the <see cref="AllowedPaths"/>.
/// </summary>
public sealed record FormArguments
{
    /// <summary>The verb.</summary>
    public required string Verb { get; init; }

    /// <summary>The given flags in declaration order, by name, with their texts.</summary>
    public required IReadOnlyList<KeyValuePair<string, IReadOnlyList<string>>> Values { get; init; }

    /// <summary>The verb and flags, as passed to the child process.</summary>
    public IReadOnlyList<string> Argv => [Verb, .. Values.SelectMany(v => v.Value.Prepend("--" + v.Key))];

    /// <summary>The command a person would type, quoted for a POSIX shell.</summary>
    public string CommandLine => "osprey " + string.Join(" ", Argv.Select(Quote));

    /// <summary>The text of flag <paramref name="name"/>, or null.</summary>
    public string? Get(string name) => Values.FirstOrDefault(v => v.Key == name).Value is { Count: > 0 } texts ? texts[0] : null;

    /// <summary>These arguments with flag <paramref name="name"/> set to <paramref name="text"/>.</summary>
    public FormArguments With(string name, string text) => this with
    {
        Values = Values.Any(v => v.Key == name)
            ? [.. Values.Select(v => v.Key == name ? new KeyValuePair<string, IReadOnlyList<string>>(name, [text]) : v)]
            : [.. Values, new(name, [text])],
    };

    /// <summary>
    /// Reads <paramref name="values"/> (flag name → text, number, bool or list of texts; empty ones are left out) for
    /// <paramref name="verb"/> and checks them as the command line would.
    /// </summary>
    /// <exception cref="OspreyException">An unknown flag, a value that does not parse, or a path outside the allowed folders.</exception>
    public static FormArguments Read(WorkbenchVerb verb, JsonObject values, AllowedPaths allowed, Func<IReadOnlyList<string>, string?>? check = null)
    {
        ArgumentNullException.ThrowIfNull(verb);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(allowed);
        var texts = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (name, node) in values)
        {
            var list = Texts(name, node);
            if (list.Count > 0 || node is JsonArray { Count: > 0 }) texts[name] = list;
        }
        // The command line's own check, when given, speaks first: its messages are the ones people know from the terminal.
        if (check?.Invoke(Words(verb.Name, texts)) is { } refused) throw new OspreyException(refused);
        foreach (var name in texts.Keys)
            if (!verb.Options.Any(o => o.Matches(name)) && !verb.OptionsTypes.Any(t => OptionSet.For(t).FindNoEffect(name) is not null))
                throw new OspreyException($"{verb.Name}: --{name} is not one of its flags; they are {string.Join(", ", verb.Options.Select(o => o.Name))}.");
        foreach (var type in verb.OptionsTypes)
        {
            var set = OptionSet.For(type);
            var mine = texts.Where(kv => set.Find(kv.Key) is not null || set.FindNoEffect(kv.Key) is not null).ToDictionary(kv => kv.Key, kv => kv.Value);
            try
            {
                typeof(OptionSet).GetMethod(nameof(OptionSet.BindStrings))!.MakeGenericMethod(type).Invoke(set, [mine]);
            }
            catch (TargetInvocationException e) when (e.InnerException is OspreyException inner)
            {
                throw new OspreyException($"{verb.Name}: {inner.Message}", inner);
            }
        }
        var ordered = new List<KeyValuePair<string, IReadOnlyList<string>>>();
        foreach (var spec in verb.Options)
        {
            var given = texts.FirstOrDefault(kv => spec.Matches(kv.Key));
            if (given.Key is null) continue;
            if (IsPathFlag(spec)) foreach (var text in given.Value) CheckPath(spec, text, allowed);
            ordered.Add(new(spec.Name, given.Value));
        }
        return new FormArguments { Verb = verb.Name, Values = ordered };
    }

    static IReadOnlyList<string> Words(string verb, Dictionary<string, IReadOnlyList<string>> texts) =>
        [verb, .. texts.SelectMany(kv => kv.Value.Prepend("--" + kv.Key))];

    /// <summary>True for flags whose values name files or folders (their placeholder says DIR, FILE or D...).</summary>
    public static bool IsPathFlag(OptionSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Placeholder.Contains("DIR", StringComparison.Ordinal) || spec.Placeholder.Contains("FILE", StringComparison.Ordinal) || spec.Placeholder == "D...";
    }

    /// <summary>
    /// Checks one path value; a hub id (org/name) or a bare name where the flag also takes ids or names, and a
    /// <c>#N</c> sample count or <c>NAME=</c> prefix, are not paths.
    /// </summary>
    static void CheckPath(OptionSpec spec, string text, AllowedPaths allowed)
    {
        var path = text;
        if (spec.Placeholder.StartsWith("[NAME=]", StringComparison.Ordinal) && path.IndexOf('=', StringComparison.Ordinal) is > 0 and var eq && !path[..eq].Contains('/', StringComparison.Ordinal)) path = path[(eq + 1)..];
        if (path.LastIndexOf('#') is > 0 and var hash && path[(hash + 1)..].All(char.IsAsciiDigit)) path = path[..hash];
        if (path.Length == 0) return;
        var takesIds = spec.Placeholder.Contains("ID", StringComparison.Ordinal) || spec.Placeholder.Contains("NAME", StringComparison.Ordinal) || spec.Placeholder == "D...";
        var looksLikePath = Path.IsPathRooted(path) || path.StartsWith('.') || path.StartsWith('~') || path.Contains("..", StringComparison.Ordinal);
        if (takesIds && !looksLikePath && (HubCache.IsRepoId(path) || !path.Contains('/', StringComparison.Ordinal)) && !Path.Exists(Path.Combine(allowed.WorkingFolder, path))) return;
        allowed.Check(spec.Name, path);
    }

    static IReadOnlyList<string> Texts(string name, JsonNode? node) => node switch
    {
        null => [],
        JsonArray array => [.. array.Select(item => Text(name, item)).Where(t => t.Length > 0)],
        _ => Text(name, node) is { Length: > 0 } text ? [text] : [],
    };

    static string Text(string name, JsonNode? node) => node?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "",
        JsonValueKind.String => node.GetValue<string>().Trim(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Number => node.GetValue<double>().ToString("R", CultureInfo.InvariantCulture),
        _ => throw new OspreyException($"--{name}: expected text, a number, true/false or a list of texts, got {node.ToJsonString()}."),
    };

    /// <summary>A word quoted for a POSIX shell when it needs it.</summary>
    public static string Quote(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        if (word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,@+%#".Contains(c, StringComparison.Ordinal))) return word;
        return new StringBuilder("'").Append(word.Replace("'", "'\\''", StringComparison.Ordinal)).Append('\'').ToString();
    }
}
