using System.Globalization;
using System.Text.Json.Nodes;
using Osprey.Options;

namespace Osprey.Server.Workbench;

/// <summary>
/// A verb's form as JSON, built from the flags its options record declares (<see cref="OptionSet"/>): the name, kind,
/// help, default, choices and whether it is common, exactly as <c>--help</c> shows them, so the page and the command
/// line cannot drift apart.
/// </summary>
public static class VerbSchema
{
    /// <summary>The schema of <paramref name="verb"/>: <c>{verb, summary, options: [{name, kind, help, ...}]}</c>.</summary>
    public static JsonObject For(WorkbenchVerb verb)
    {
        ArgumentNullException.ThrowIfNull(verb);
        var options = new JsonArray();
        foreach (var spec in verb.Options)
        {
            options.Add(new JsonObject
            {
                ["name"] = spec.Name,
                ["aliases"] = new JsonArray([.. spec.Aliases.Select(a => (JsonNode?)JsonValue.Create(a))]),
                ["kind"] = spec.Kind.ToString().ToLowerInvariant(),
                ["help"] = spec.Help,
                ["placeholder"] = spec.Placeholder,
                ["default"] = spec.Secret ? null : DefaultJson(spec),
                ["default_text"] = spec.Secret ? null : spec.DefaultText,
                ["choices"] = new JsonArray([.. spec.Choices.Select(c => (JsonNode?)JsonValue.Create(c))]),
                ["common"] = spec.Common,
                ["secret"] = spec.Secret,
                ["path"] = FormArguments.IsPathFlag(spec),
            });
        }
        return new JsonObject { ["verb"] = verb.Name, ["summary"] = verb.Summary, ["options"] = options };
    }

    /// <summary>The default as the form shows it in its field: text, number, bool or a list of texts; null when none.</summary>
    static JsonNode? DefaultJson(OptionSpec spec) => spec.Default switch
    {
        _ when spec.Converter is not null => spec.DefaultText is { } text ? JsonValue.Create(text) : null,
        null => null,
        Enum e => JsonValue.Create(OptionSet.ChoiceText(e)),
        string s => s.Length == 0 ? null : JsonValue.Create(s),
        IEnumerable<string> list => new JsonArray([.. list.Select(v => (JsonNode?)JsonValue.Create(v))]),
        bool b => JsonValue.Create(b),
        int i => JsonValue.Create(i),
        long l => JsonValue.Create(l),
        double d => JsonValue.Create(d),
        var other => JsonValue.Create(Convert.ToString(other, CultureInfo.InvariantCulture)),
    };
}
