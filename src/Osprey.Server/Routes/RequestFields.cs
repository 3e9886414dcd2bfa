using System.Text.Json;

namespace Osprey.Server;

/// <summary>
/// Reads the fields of a request body with their OpenAI types; a field of the wrong type is an
/// <see cref="ApiException"/> (400) naming it. Absent and null fields read as null.
/// </summary>
internal sealed class RequestFields
{
    readonly JsonElement _root;

    public RequestFields(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw ApiException.Bad("The request body must be a JSON object.");
        _root = root;
    }

    public JsonElement? Get(string name) =>
        _root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    static ApiException Wrong(string name, string what) => ApiException.Bad($"'{name}' must be {what}.", name);

    public string? String(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Wrong(name, "a string");
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Wrong(name, "a boolean") };
    }

    public double? Double(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) ? d : throw Wrong(name, "a number");
    }

    public long? Long(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Number)
        {
            if (v.TryGetInt64(out var l)) return l;
            if (v.TryGetDouble(out var d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) return (long)d;
        }
        throw Wrong(name, "an integer");
    }

    public int? Int(string name, int min, int max = int.MaxValue)
    {
        if (Long(name) is not { } l) return null;
        if (l < min || l > max) throw ApiException.Bad(max == int.MaxValue ? $"'{name}' must be {min} or more, got {l}." : $"'{name}' must be between {min} and {max}, got {l}.", name);
        return (int)l;
    }

    /// <summary>A string or a list of strings (stop).</summary>
    public IReadOnlyList<string>? Strings(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.String) return [v.GetString()!];
        if (v.ValueKind != JsonValueKind.Array) throw Wrong(name, "a string or a list of strings");
        var list = new List<string>();
        foreach (var e in v.EnumerateArray())
            list.Add(e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Wrong(name, "a string or a list of strings"));
        return list;
    }

    /// <summary>Rejects fields whose non-default values Osprey does not implement, so nothing is silently ignored.</summary>
    public void Unsupported(string name, Func<JsonElement, bool> isDefault)
    {
        if (Get(name) is { } v && !isDefault(v)) throw ApiException.Bad($"'{name}' is not supported by this server.", name);
    }
}
