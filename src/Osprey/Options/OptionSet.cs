using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;

namespace Osprey.Options;

/// <summary>
/// The flags an options record declares (its <see cref="OptionAttribute"/> properties and those of its
/// <see cref="OptionGroupAttribute"/> records), found by reflection once per type. It binds values onto a fresh
/// record, formats help and writes a record back out as JSON, so every reader of flags shares one declaration.
/// </summary>
public sealed class OptionSet
{
    static readonly ConcurrentDictionary<Type, OptionSet> Cache = new();

    readonly Type _type;

    OptionSet(Type type)
    {
        _type = type;
        var root = Activator.CreateInstance(type) ?? throw new InvalidOperationException($"{type.Name} needs a parameterless constructor to declare options.");
        var specs = new List<OptionSpec>();
        Collect(type, root, [], specs);
        var noEffect = new List<NoEffectFlag>();
        CollectNoEffect(type, noEffect);
        // A verb may implement a flag a shared group ignores elsewhere (rlhf's GRPO takes --external_plugins, which
        // ModelOptions lists as no-effect for every verb): the real declaration wins.
        // So may an alias (rlhf maps --vllm_gpu_memory_utilization onto --rollout_memory_fraction).
        noEffect.RemoveAll(f => specs.Any(s => (s.Name == f.Name || s.Aliases.Contains(f.Name)) && s.Path.Count > 0 && s.Path[^1].DeclaringType?.Namespace == "Osprey.Training.Grpo"));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in specs.SelectMany(s => s.Aliases.Prepend(s.Name)).Concat(noEffect.Select(f => f.Name)))
            if (!seen.Add(name)) throw new InvalidOperationException($"{type.Name} declares the flag --{name} twice.");
        Options = specs;
        NoEffect = noEffect;
    }

    /// <summary>The declared flags of <typeparamref name="T"/>, in declaration order.</summary>
    public static OptionSet For<T>() => For(typeof(T));

    /// <summary>The declared flags of <paramref name="type"/>, in declaration order.</summary>
    public static OptionSet For(Type type) => Cache.GetOrAdd(type, t => new OptionSet(t));

    /// <summary>The flags.</summary>
    public IReadOnlyList<OptionSpec> Options { get; }

    /// <summary>
    /// The flags accepted for ms-swift compatibility that change nothing here (<see cref="NoEffectFlagAttribute"/>), in
    /// declaration order: the record's own, then its groups'.
    /// </summary>
    public IReadOnlyList<NoEffectFlag> NoEffect { get; }

    /// <summary>The flag called <paramref name="name"/> (or one of its aliases), or null.</summary>
    public OptionSpec? Find(string name) => Options.FirstOrDefault(o => o.Matches(name));

    /// <summary>The no-effect flag called <paramref name="name"/> (snake_case or kebab-case), or null.</summary>
    public NoEffectFlag? FindNoEffect(string name) => NoEffect.FirstOrDefault(f => f.Name == name.Replace('-', '_'));

    /// <summary>
    /// A new record with the defaults, overwritten by every flag <paramref name="read"/> returns a value for. The
    /// reader gets each flag and returns its value typed by <see cref="OptionSpec.Kind"/> (int, long, double, bool,
    /// string for strings and choices, IReadOnlyList&lt;string&gt; for lists) or null when it was not given.
    /// </summary>
    /// <exception cref="OspreyException">A choice flag has a value that is not one of its choices.</exception>
    public T Bind<T>(Func<OptionSpec, object?> read) where T : notnull
    {
        if (typeof(T) != _type) throw new ArgumentException($"this set declares {_type.Name}, not {typeof(T).Name}.", nameof(T));
        var root = Activator.CreateInstance(_type)!;
        // Each group gets a copy of its default first, so a default instance shared by reference is never changed.
        CopyGroups(root);
        foreach (var spec in Options)
        {
            var value = read(spec);
            if (value is null) continue;
            var target = spec.Path.SkipLast(1).Aggregate(root, (parent, group) => group.GetValue(parent)!);
            spec.Path[^1].SetValue(target, Convert(spec, value));
        }
        return (T)root;
    }

    /// <summary>
    /// Binds string values, as a form or a JSON/YAML mapping gives them: <paramref name="values"/> maps flag names (or
    /// aliases) to their texts. Unknown names are an error.
    /// </summary>
    /// <exception cref="OspreyException">An unknown flag or a value that does not parse.</exception>
    public T BindStrings<T>(IReadOnlyDictionary<string, IReadOnlyList<string>> values) where T : notnull
    {
        foreach (var name in values.Keys)
            if (Find(name) is null && FindNoEffect(name) is null) throw new OspreyException($"--{name} is not a flag of {_type.Name}; the flags are {string.Join(", ", Options.Select(o => o.Name))}.");
        return Bind<T>(spec =>
        {
            var given = values.FirstOrDefault(kv => spec.Matches(kv.Key)).Value;
            return given is null ? null : Parse(spec, given);
        });
    }

    /// <summary>Parses the texts of one flag into its typed value (see <see cref="Bind{T}"/>).</summary>
    /// <exception cref="OspreyException">The text does not parse.</exception>
    public static object Parse(OptionSpec spec, IReadOnlyList<string> texts)
    {
        if (spec.Kind == OptionKind.List) return texts.ToList();
        if (spec.Kind == OptionKind.Bool && texts.Count == 0) return true;
        if (texts.Count != 1) throw new OspreyException($"--{spec.Name} takes one value, got {texts.Count}.");
        var text = texts[0];
        object? value = spec.Kind switch
        {
            OptionKind.Int => int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : null,
            OptionKind.Long => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) ? l : null,
            OptionKind.Double => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null,
            OptionKind.Bool => text.ToLowerInvariant() switch { "true" or "1" or "yes" => true, "false" or "0" or "no" => false, _ => null },
            _ => text,
        };
        return value ?? throw new OspreyException($"--{spec.Name} expects {spec.Kind switch { OptionKind.Bool => "true or false", OptionKind.Double => "a number", _ => "an integer" }}, got '{text}'.");
    }

    /// <summary>
    /// The help lines of every flag: <c>  --lora_rank N           LoRA rank (default 8).</c>, wrapped names padded to
    /// one column.
    /// </summary>
    public string Help()
    {
        var text = new StringBuilder();
        foreach (var o in Options)
        {
            var head = $"  --{o.Name} {o.Placeholder}";
            var choices = o.Kind == OptionKind.Choice ? $" ({string.Join(" | ", o.Choices)})" : "";
            var aliases = o.Aliases.Count == 0 ? "" : $" Also --{string.Join(", --", o.Aliases)}.";
            var defaults = o.DefaultText is null ? "" : $" Default: {o.DefaultText}.";
            var line = head.Length < 34 ? head.PadRight(34) : head + "\n" + new string(' ', 34);
            text.Append(line).Append(o.Help).Append(choices).Append(defaults).Append(aliases).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>
    /// The help section of the no-effect flags of <paramref name="sets"/>: a heading, then the flags that share a reason
    /// listed together above it; empty when there are none.
    /// </summary>
    public static string NoEffectHelp(params OptionSet[] sets)
    {
        var flags = sets.SelectMany(s => s.NoEffect).DistinctBy(f => f.Name).ToList();
        if (flags.Count == 0) return "";
        var text = new StringBuilder("\nAccepted for ms-swift scripts, no effect here (a one-line notice says so when given):\n");
        foreach (var group in flags.GroupBy(f => f.Reason))
        {
            var line = new StringBuilder("  ");
            foreach (var name in group.Select(f => "--" + f.Name))
            {
                if (line.Length > 2 && line.Length + name.Length + 2 > 118)
                {
                    text.Append(line).Append(",\n");
                    line.Clear().Append("  ");
                }
                line.Append(line.Length > 2 ? ", " : "").Append(name);
            }
            text.Append(line).Append('\n').Append("      ").Append(group.Key).Append(".\n");
        }
        return text.ToString();
    }

    /// <summary>Every flag of <paramref name="options"/> with its value, by name (args.json, a saved form); secrets (<see cref="OptionAttribute.Secret"/>) are left out.</summary>
    public JsonObject ToJson(object options)
    {
        if (options.GetType() != _type) throw new ArgumentException($"expected {_type.Name}, got {options.GetType().Name}.", nameof(options));
        var json = new JsonObject();
        foreach (var spec in Options)
        {
            if (spec.Secret) continue;
            var value = spec.Path.Aggregate<PropertyInfo, object?>(options, (target, p) => target is null ? null : p.GetValue(target));
            json[spec.Name] = value switch
            {
                _ when spec.Converter is { } converter => converter.Show(value),
                null => null,
                Enum e => ChoiceText(e),
                IEnumerable<string> list => new JsonArray(list.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
                int or long or double or bool or string => JsonValue.Create(value),
                _ => JsonValue.Create(value.ToString()),
            };
        }
        return json;
    }

    /// <summary>How an enum value is typed: its <see cref="OptionValueAttribute"/>, else its name in snake_case.</summary>
    public static string ChoiceText(Enum value)
    {
        var field = value.GetType().GetField(value.ToString());
        return field?.GetCustomAttribute<OptionValueAttribute>()?.Text ?? SnakeCase(value.ToString());
    }

    /// <summary>The enum value typed as <paramref name="text"/> (case, '-' and '_' ignored).</summary>
    /// <exception cref="OspreyException">No member is spelled that way; the message lists the choices.</exception>
    public static TEnum ParseChoice<TEnum>(string flag, string text) where TEnum : struct, Enum => (TEnum)ParseChoice(typeof(TEnum), flag, text);

    static object ParseChoice(Type type, string flag, string text)
    {
        var key = text.Trim().ToLowerInvariant().Replace('-', '_');
        foreach (Enum value in Enum.GetValues(type))
            if (ChoiceText(value) == key) return value;
        var choices = Enum.GetValues(type).Cast<Enum>().Select(ChoiceText).ToList();
        throw new OspreyException($"--{flag} '{text}' is not supported; use {string.Join(", ", choices.SkipLast(1))} or {choices[^1]}.");
    }

    static object? Convert(OptionSpec spec, object value)
    {
        if (spec.Converter is { } converter) return converter.Read(spec.Name, value);
        if (spec.Kind == OptionKind.Choice) return ParseChoice(spec.ValueType, spec.Name, (string)value);
        if (spec.Kind == OptionKind.List) return value is IReadOnlyList<string> list ? list : ((IEnumerable<string>)value).ToList();
        return value;
    }

    static void CollectNoEffect(Type type, List<NoEffectFlag> flags)
    {
        foreach (var table in type.GetCustomAttributes<NoEffectFlagsFromAttribute>(inherit: false).Select(a => a.Table).Prepend(type))
            foreach (var flag in table.GetCustomAttributes<NoEffectFlagAttribute>(inherit: false))
                flags.Add(new NoEffectFlag(flag.Name, flag.Reason));
        foreach (var group in type.GetProperties(BindingFlags.Instance | BindingFlags.Public))
            if (group.GetCustomAttribute<OptionGroupAttribute>() is not null) CollectNoEffect(group.PropertyType, flags);
    }

    static void CopyGroups(object target)
    {
        foreach (var group in target.GetType().GetProperties(BindingFlags.Instance | BindingFlags.Public))
        {
            if (group.GetCustomAttribute<OptionGroupAttribute>() is null) continue;
            var copy = ShallowCopy(group.GetValue(target)!);
            group.SetValue(target, copy);
            CopyGroups(copy);
        }
    }

    static object ShallowCopy(object value) =>
        typeof(object).GetMethod("MemberwiseClone", BindingFlags.Instance | BindingFlags.NonPublic)!.Invoke(value, null)!;

    static void Collect(Type type, object defaults, List<PropertyInfo> path, List<OptionSpec> specs)
    {
        foreach (var property in type.GetProperties(BindingFlags.Instance | BindingFlags.Public))
        {
            if (property.GetCustomAttribute<OptionGroupAttribute>() is not null)
            {
                var nested = property.GetValue(defaults) ?? throw new InvalidOperationException($"{type.Name}.{property.Name} is an option group without a default instance.");
                Collect(property.PropertyType, nested, [.. path, property], specs);
                continue;
            }
            if (property.GetCustomAttribute<OptionAttribute>() is not { } attribute) continue;
            if (!property.CanWrite) throw new InvalidOperationException($"{type.Name}.{property.Name} declares --{attribute.Name} but has no setter.");
            var valueType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            var converter = attribute.Converter is { } t ? (IOptionConverter)Activator.CreateInstance(t)! : null;
            var kind = converter?.Kind ?? KindOf(valueType) ?? throw new InvalidOperationException($"{type.Name}.{property.Name} (--{attribute.Name}) has type {valueType.Name}, which no flag kind reads.");
            var value = property.GetValue(defaults);
            specs.Add(new OptionSpec
            {
                Name = attribute.Name,
                Aliases = attribute.Aliases,
                Kind = kind,
                Help = attribute.Help,
                Placeholder = attribute.Placeholder ?? kind switch
                {
                    OptionKind.Int or OptionKind.Long => "N",
                    OptionKind.Double => "X",
                    OptionKind.Bool => "B",
                    OptionKind.Choice => "S",
                    OptionKind.List => "V...",
                    _ => "S",
                },
                Default = value,
                DefaultText = attribute.DefaultText ?? (converter is null ? Show(value) : converter.Show(value)),
                Converter = converter,
                Choices = kind == OptionKind.Choice ? Enum.GetValues(valueType).Cast<Enum>().Select(ChoiceText).ToList() : [],
                Common = attribute.Common,
                Secret = attribute.Secret,
                Path = [.. path, property],
            });
        }
    }

    static OptionKind? KindOf(Type t) =>
        t == typeof(string) ? OptionKind.String
        : t == typeof(int) ? OptionKind.Int
        : t == typeof(long) ? OptionKind.Long
        : t == typeof(double) ? OptionKind.Double
        : t == typeof(bool) ? OptionKind.Bool
        : t.IsEnum ? OptionKind.Choice
        : typeof(IEnumerable<string>).IsAssignableFrom(t) ? OptionKind.List
        : null;

    static string? Show(object? value) => value switch
    {
        null => null,
        Enum e => ChoiceText(e),
        bool b => b ? "true" : "false",
        double d => d.ToString("G", CultureInfo.InvariantCulture),
        IEnumerable<string> list => list.Any() ? string.Join(" ", list) : null,
        string s => s.Length == 0 ? null : s,
        _ => System.Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    static string SnakeCase(string name)
    {
        var text = new StringBuilder();
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0) text.Append('_');
            text.Append(char.ToLowerInvariant(name[i]));
        }
        return text.ToString();
    }
}
