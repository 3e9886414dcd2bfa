using System.Text.Json;

namespace Osprey.Server;

/// <summary>
/// Reads the fields of a request body with their OpenAI types; a field of the wrong type is an
/// <see cref="ApiException"/> (400) naming it. Absent and null fields read as null.
/// </summary>
internal sealed class RequestFields
{
    readonly JsonElement _root;
    readonly string _prefix;

    /// <summary>The body's fields, or (with <paramref name="path"/>, such as "stream_options") a nested object's.</summary>
    public RequestFields(JsonElement root, string? path = null)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw path is null ? ApiException.Bad("The request body must be a JSON object.") : ApiException.Bad($"'{path}' must be an object.", path);
        _root = root;
        _prefix = path is null ? "" : path + ".";
    }

    public JsonElement? Get(string name) =>
        _root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    /// <summary>The field's path as OpenAI writes it in param: "temperature", "stream_options.include_usage".</summary>
    public string Path(string name) => _prefix + name;

    ApiException Wrong(string name, string what) => ApiException.Bad($"'{Path(name)}' must be {what}.", Path(name));

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
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && double.IsFinite(d) ? d : throw Wrong(name, "a number");
    }

    /// <summary>A number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public double? Double(string name, double min, double max)
    {
        if (Double(name) is not { } d) return null;
        if (d < min || d > max) throw ApiException.Bad($"'{Path(name)}' must be between {min} and {max}, got {d}.", Path(name));
        return d;
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
        if (l < min || l > max) throw ApiException.Bad(max == int.MaxValue ? $"'{Path(name)}' must be {min} or more, got {l}." : $"'{Path(name)}' must be between {min} and {max}, got {l}.", Path(name));
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
        if (Get(name) is { } v && !isDefault(v)) throw ApiException.Bad($"'{Path(name)}' is not supported by this server.", Path(name));
    }
}
