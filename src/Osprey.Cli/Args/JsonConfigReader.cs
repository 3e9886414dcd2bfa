using System.Text;
using System.Text.Json;

namespace Osprey.Cli.Args;

/// <summary>Reads the JSON form of a config file (what ms-swift writes as args.json, among others).</summary>
/// <remarks>
/// It walks the tokens with <see cref="Utf8JsonReader"/> rather than loading a JsonDocument because only the
/// reader knows where each token sits, and every error has to name its line.
/// </remarks>
internal static class JsonConfigReader
{
    public static IReadOnlyList<ParsedOption> Read(string path, string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new UserError($"Config file {path} is empty; write a JSON object of flag: value in it, like {{\"model\": \"Qwen/Qwen3-0.6B\"}}.");
        }

        var bytes = Encoding.UTF8.GetBytes(text);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions
        {
            // Hand-edited configs grow comments and trailing commas; refusing them helps nobody.
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
        });

        try
        {
            return ReadObject(path, bytes, ref reader);
        }
        catch (JsonException e)
        {
            var line = (e.LineNumber ?? 0) + 1;
            var message = e.Message;
            var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut >= 0)
            {
                message = message[..cut];
            }

            throw new UserError($"Config file {path} line {line} is not valid JSON ({message.TrimEnd('.', ' ')}); fix the syntax there.", e);
        }
    }

    private static List<ParsedOption> ReadObject(string path, byte[] bytes, ref Utf8JsonReader reader)
    {
        var entries = new List<ParsedOption>();
        if (!reader.Read())
        {
            return entries;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new UserError($"Config file {path} line {LineOf(bytes, reader)} must hold one JSON object of flag: value (like {{\"model\": \"Qwen/Qwen3-0.6B\"}}).");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var written = reader.GetString() ?? string.Empty;
            var line = LineOf(bytes, reader);
            reader.Read();
            var name = FlagName.Normalize(written);
            switch (reader.TokenType)
            {
                case JsonTokenType.Null:
                    entries.Add(new ParsedOption(name, written, [], isBare: false, isNull: true, configFile: path, line: line));
                    break;
                case JsonTokenType.StartArray:
                    var items = new List<string>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        items.Add(Scalar(path, bytes, written, ref reader, inList: true));
                    }

                    entries.Add(new ParsedOption(name, written, items, isBare: false, isNull: false, configFile: path, line: line));
                    break;
                default:
                    entries.Add(new ParsedOption(name, written, [Scalar(path, bytes, written, ref reader, inList: false)], isBare: false, isNull: false, configFile: path, line: line));
                    break;
            }
        }

        // Anything after the object is reported by Utf8JsonReader itself as invalid JSON.
        while (reader.Read())
        {
        }

        return entries;
    }

    private static string Scalar(string path, byte[] bytes, string key, ref Utf8JsonReader reader, bool inList) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString() ?? string.Empty,
        // The raw text keeps the number as written ("1e-4" stays "1e-4"); the verb decides its type.
        JsonTokenType.Number => Encoding.UTF8.GetString(reader.ValueSpan),
        JsonTokenType.True => "true",
        JsonTokenType.False => "false",
        _ => throw new UserError(inList
            ? $"Config file {path} line {LineOf(bytes, reader)}: the list '{key}' holds {Describe(reader.TokenType)}; list items must be plain values."
            : $"Config file {path} line {LineOf(bytes, reader)}: '{key}' holds {Describe(reader.TokenType)}, but config files are flat; give a value or a list of values."),
    };

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "a nested object",
        JsonTokenType.StartArray => "a nested list",
        JsonTokenType.Null => "a null",
        _ => "an unexpected " + token,
    };

    private static int LineOf(byte[] bytes, Utf8JsonReader reader) =>
        bytes.AsSpan(0, (int)reader.TokenStartIndex).Count((byte)'\n') + 1;
}
