using System.Text.Json;
using Osprey.Inference.Constraints;

namespace Osprey.Serving;

/// <summary>
/// The grammar of a forced function call: <see cref="ToolCallParser.CallPrefix"/>, the call object
/// {"name": NAME, "arguments": ARGS} with the name fixed and the arguments a value of the function's parameters
/// schema, then <see cref="ToolCallParser.CallSuffix"/>; with several functions, any one of them. Decoded under
/// it, a reply is always one call that <see cref="ToolCallParser"/> reads back with arguments that validate.
/// </summary>
public static class ToolCallGrammar
{
    /// <summary>
    /// The grammar for one call of any of <paramref name="functions"/>: each its name, its parameters schema
    /// (null: none, so the arguments are {}) and the schema's place in the request for errors
    /// ("tools[0].function.parameters"). Throws <see cref="JsonSchemaException"/> naming that place for a
    /// schema outside the supported subset or one that allows arguments that are not an object.
    /// </summary>
    public static JsonSchemaGrammar For(IReadOnlyList<(string Name, JsonElement? Parameters, string Path)> functions)
    {
        ArgumentNullException.ThrowIfNull(functions);
        if (functions.Count == 0) throw new ArgumentException("A forced tool call needs at least one function.", nameof(functions));
        var calls = new List<JsonSchemaGrammar>();
        foreach (var (name, parameters, path) in functions)
        {
            var arguments = parameters is { ValueKind: not JsonValueKind.Null } p
                ? JsonSchemaGrammar.FromSchema(ObjectByDefault(p), path)
                // OpenAI: leaving parameters out defines a function with an empty parameter list.
                : JsonSchemaGrammar.FromSchema("""{"type":"object","properties":{},"additionalProperties":false}""");
            if (!arguments.OnlyObjects)
                throw new JsonSchemaException(path + ".type", "a function's parameters must describe a JSON object (\"type\": \"object\").");
            using var nameDoc = JsonDocument.Parse(JsonSerializer.Serialize(new Dictionary<string, string> { ["const"] = name }));
            calls.Add(JsonSchemaGrammar.Object([new("name", JsonSchemaGrammar.FromSchema(nameDoc.RootElement)), new("arguments", arguments)]));
        }
        return JsonSchemaGrammar.AnyOf(calls).Between(ToolCallParser.CallPrefix, ToolCallParser.CallSuffix);
    }

    /// <summary>
    /// A parameters schema with neither "type" nor "anyOf" (common in the wild: just "properties") is taken as an
    /// object schema, which is how every client means it; other schemas are kept as they are.
    /// </summary>
    static JsonElement ObjectByDefault(JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object || schema.TryGetProperty("type", out _) || schema.TryGetProperty("anyOf", out _)) return schema;
        var node = System.Text.Json.Nodes.JsonNode.Parse(schema.GetRawText())!.AsObject();
        node["type"] = "object";
        using var doc = JsonDocument.Parse(node.ToJsonString());
        return doc.RootElement.Clone();
    }
}
