using System.Globalization;
using System.Text.Json;
using Osprey.Templates;

namespace Osprey.Datasets;

// Reading cells: messages, required and optional strings, JSON-in-a-string, and how a wrong value is shown in an error.
internal sealed partial class RowConverter
{
    private static Dictionary<string, object?> Message(string role, object? content) => new(StringComparer.Ordinal) { ["role"] = role, ["content"] = content };

    private static string? Role(object? message) => (message as Dictionary<string, object?>)?.GetValueOrDefault("role") as string;

    private static string RequiredString(Dictionary<string, object?> row, string field)
    {
        if (!row.TryGetValue(field, out var value) || value is null)
            throw new RowError($"field \"{field}\" is missing; add it (or map a field of yours to it with --columns '{{\"your_field\": \"{field}\"}}')", field);
        return value switch
        {
            string s => s,
            long or double => System.Convert.ToString(value, CultureInfo.InvariantCulture)!,
            _ => throw new RowError($"field \"{field}\" must be a string, got {TypeName(value)}", field),
        };
    }

    private static string? OptionalString(Dictionary<string, object?> row, string field) =>
        row.GetValueOrDefault(field) switch
        {
            null => null,
            string s => s,
            long or double => System.Convert.ToString(row[field], CultureInfo.InvariantCulture),
            var other => throw new RowError($"field \"{field}\" must be a string, got {TypeName(other)}", field),
        };

    /// <summary>A list or object stored as a JSON string (CSV cells, some hub datasets), parsed; anything else as is.</summary>
    private static object? Parsed(object? value)
    {
        if (value is not string s) return value;
        var t = s.TrimStart();
        if (t.Length == 0 || (t[0] != '[' && t[0] != '{')) return value;
        try
        {
            using var doc = JsonDocument.Parse(s);
            return Plain.From(doc.RootElement);
        }
        catch (JsonException)
        {
            return value;
        }
    }

    private static string TypeName(object? value) => value switch
    {
        null => "null",
        string => "a string",
        bool => "a boolean",
        long or double => "a number",
        List<object?> => "a list",
        Dictionary<string, object?> => "an object",
        _ => value.GetType().Name,
    };

    private static string Show(object? value) => value is string s ? $"\"{s}\"" : System.Convert.ToString(value, CultureInfo.InvariantCulture) ?? "null";
}
