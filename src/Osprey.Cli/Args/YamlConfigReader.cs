using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Osprey.Cli.Args;

/// <summary>Reads the YAML form of a config file (the form ms-swift's example configs use).</summary>
internal static class YamlConfigReader
{
    public static IReadOnlyList<ParsedOption> Read(string path, string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            var message = e.Message.TrimEnd('.');
            if (message.StartsWith("Duplicate key ", StringComparison.Ordinal))
            {
                throw new UserError($"Config file {path} line {e.Start.Line} sets '{message["Duplicate key ".Length..]}' a second time; keep one of them.", e);
            }

            throw new UserError($"Config file {path} line {e.Start.Line} is not valid YAML ({message}); fix the syntax there.", e);
        }

        if (stream.Documents.Count == 0)
        {
            return [];
        }

        if (stream.Documents.Count > 1)
        {
            throw new UserError($"Config file {path} holds {stream.Documents.Count} YAML documents (line {stream.Documents[1].RootNode.Start.Line} starts another); put all flags in one.");
        }

        var root = stream.Documents[0].RootNode;
        if (IsNull(root))
        {
            return [];
        }

        if (root is not YamlMappingNode mapping)
        {
            throw new UserError($"Config file {path} line {root.Start.Line} must start a mapping of flag: value (like 'model: Qwen/Qwen3-0.6B'), not a {Describe(root)}.");
        }

        var entries = new List<ParsedOption>();
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var line = (int)keyNode.Start.Line;
            if (keyNode is not YamlScalarNode { Value: { } written })
            {
                throw new UserError($"Config file {path} line {line} has a {Describe(keyNode)} as a key; keys are flag names, like max_new_tokens.");
            }

            entries.Add(valueNode switch
            {
                _ when IsNull(valueNode) => Entry(written, [], isNull: true, path, line),
                YamlScalarNode scalar => Entry(written, [scalar.Value ?? string.Empty], isNull: false, path, line),
                YamlSequenceNode sequence => Entry(written, ListItems(path, written, sequence), isNull: false, path, line),
                _ => throw new UserError($"Config file {path} line {line}: '{written}' holds a {Describe(valueNode)}, but config files are flat; give a value or a list of values."),
            });
        }

        return entries;
    }

    private static List<string> ListItems(string path, string key, YamlSequenceNode sequence)
    {
        var items = new List<string>();
        foreach (var item in sequence.Children)
        {
            if (item is not YamlScalarNode scalar || IsNull(item))
            {
                throw new UserError($"Config file {path} line {item.Start.Line}: the list '{key}' holds {(IsNull(item) ? "an empty item" : "a " + Describe(item))}; list items must be plain values.");
            }

            items.Add(scalar.Value ?? string.Empty);
        }

        return items;
    }

    // YAML spells "no value" as an empty plain scalar, '~' or 'null'; quoted "null" stays the string.
    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    private static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "nested mapping",
        YamlSequenceNode => "list",
        _ => "value",
    };

    private static ParsedOption Entry(string written, IReadOnlyList<string> values, bool isNull, string path, int line) =>
        new(FlagName.Normalize(written), written, values, isBare: false, isNull: isNull, configFile: path, line: line);
}
