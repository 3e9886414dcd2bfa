using System.Text.Json;
using Osprey.Options;

namespace Osprey.Datasets;

/// <summary>Reads <c>--columns</c>: a JSON object mapping column names to column names.</summary>
internal sealed class ColumnMapConverter : IOptionConverter
{
    public OptionKind Kind => OptionKind.String;

    public object? Read(string flag, object value)
    {
        var text = (string)value;
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new OspreyException($"--{flag} must be a JSON object of renames like '{{\"prompt\": \"query\"}}', got {text}.");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new OspreyException($"--{flag} maps \"{p.Name}\" to {p.Value.GetRawText()}; map each column to a column name string.");
                result[p.Name] = p.Value.GetString()!;
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new OspreyException($"--{flag} is not valid JSON ({e.Message}); pass an object like '{{\"prompt\": \"query\"}}'.", e);
        }
    }

    public string? Show(object? value) =>
        value is IReadOnlyDictionary<string, string> map ? JsonSerializer.Serialize(map) : null;
}
