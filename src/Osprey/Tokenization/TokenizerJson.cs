using System.Text.Json;

namespace Osprey.Tokenization;

/// <summary>Small readers for tokenizer.json fields with errors that name the field.</summary>
internal static class TokenizerJson
{
    public static string Type(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
            throw new OspreyException($"tokenizer.json {path} has no \"type\"; the file is not a Hugging Face tokenizer.json.");
        return t.GetString()!;
    }

    public static string String(JsonElement e, string name, string path)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.String)
            throw new OspreyException($"tokenizer.json {path}.{name} is missing or not a string.");
        return v.GetString()!;
    }

    public static bool Bool(JsonElement e, string name, bool fallback) =>
        e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

    public static SplitPattern Pattern(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.Object)
        {
            if (e.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String) return SplitPattern.Literal(s.GetString()!);
            if (e.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String) return SplitPattern.Regex(r.GetString()!);
        }
        throw new OspreyException($"tokenizer.json {path} must be {{\"String\": …}} or {{\"Regex\": …}}.");
    }

    public static OspreyException Unsupported(string kind, string type, string path) =>
        new($"tokenizer.json {path}: the {kind} '{type}' is not supported by Osprey yet; supported ones are listed in docs/tokenizers.md.");
}
