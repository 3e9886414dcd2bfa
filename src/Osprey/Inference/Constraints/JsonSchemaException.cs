namespace Osprey.Inference.Constraints;

/// <summary>
/// A JSON schema that constrained decoding cannot compile. <see cref="Path"/> names the place, starting at
/// "schema" (schema.properties.age.minimum); the message also lists the supported keywords.
/// </summary>
public sealed class JsonSchemaException(string path, string reason)
    : OspreyException($"{path}: {reason} Supported keywords: {string.Join(", ", JsonSchemaGrammar.SupportedKeywords)}.")
{
    /// <summary>Where in the schema the problem is.</summary>
    public string Path { get; } = path;
}
