namespace Osprey.Inference.Constraints;

/// <summary>
/// One compiled schema: what a JSON value at this place may be. Nodes are compared by reference, so the parse
/// states that hold them (records) compare equal exactly when they stand at the same place of the same schema.
/// </summary>
internal abstract class SchemaNode
{
    /// <summary>Any JSON value (the empty schema, <c>true</c>).</summary>
    public static readonly AnyNode Any = new();
}

/// <summary>Any JSON value; its parts are themselves any values.</summary>
internal sealed class AnyNode : SchemaNode
{
    public ObjectNode Object { get; }
    public ArrayNode Array { get; }
    public StringNode String { get; } = new(0, null);
    public NumberNode Number { get; } = new(false);
    public LiteralNode Words { get; } = new(["true", "false", "null"]);

    public AnyNode()
    {
        Object = new ObjectNode(new Dictionary<string, SchemaNode>(), [], this);
        Array = new ArrayNode(this, 0, null);
    }
}

/// <summary>An object: named properties, the required names, and what other keys hold (null: no other keys).</summary>
internal sealed class ObjectNode(IReadOnlyDictionary<string, SchemaNode> properties, IReadOnlyList<string> required, SchemaNode? additional) : SchemaNode
{
    public IReadOnlyDictionary<string, SchemaNode> Properties { get; } = properties;
    public IReadOnlyList<string> Required { get; } = required;
    public SchemaNode? Additional { get; } = additional;
    /// <summary>True when no declared or required name holds U+0000, the separator of <see cref="ObjectFrame.Seen"/>: then its names can be sorted there.</summary>
    public bool SortableNames { get; } = !properties.Keys.Concat(required).Any(k => k.Contains('\0'));
    /// <summary>Each property name as it is written between the quotes (UTF-8 bytes, one char per byte), for closed objects.</summary>
    public IReadOnlyDictionary<string, string> WrittenNames { get; } =
        properties.Keys.ToDictionary(k => JsonText.Latin1(JsonText.EscapeContent(k)), k => k, StringComparer.Ordinal);
}

/// <summary>An array of <see cref="Items"/>, between <see cref="MinItems"/> and <see cref="MaxItems"/> long.</summary>
internal sealed class ArrayNode(SchemaNode items, int minItems, int? maxItems) : SchemaNode
{
    public SchemaNode Items { get; } = items;
    public int MinItems { get; } = minItems;
    public int? MaxItems { get; } = maxItems;
}

/// <summary>A string of <see cref="MinLength"/> to <see cref="MaxLength"/> code points.</summary>
internal sealed class StringNode(int minLength, int? maxLength) : SchemaNode
{
    public int MinLength { get; } = minLength;
    public int? MaxLength { get; } = maxLength;

    static readonly System.Collections.Concurrent.ConcurrentDictionary<(int, int?), StringNode> s_shared = new();

    /// <summary>Most shared bounds kept; past this <see cref="Shared"/> makes a new node (a bound on memory only: a key then just repeats a walk).</summary>
    const int MaxShared = 4096;

    /// <summary>
    /// One node per pair of bounds, for mask keys (<see cref="StringFrame.Lexical"/>): strings of every schema that
    /// have the same bounds left then share a key, so their masks are walked once per tokenizer.
    /// </summary>
    public static StringNode Shared(int minLength, int? maxLength) =>
        s_shared.TryGetValue((minLength, maxLength), out var node) ? node
        : s_shared.Count >= MaxShared ? new StringNode(minLength, maxLength)
        : s_shared.GetOrAdd((minLength, maxLength), k => new StringNode(k.Item1, k.Item2));
}

/// <summary>A JSON number; an integer when <see cref="Integer"/> (a fraction of zeros, as in 1.0, is still one).</summary>
internal sealed class NumberNode(bool integer) : SchemaNode
{
    public bool Integer { get; } = integer;
}

/// <summary>One of fixed texts (true/false/null, enum and const values), each as written bytes, one char per byte.</summary>
internal sealed class LiteralNode(IReadOnlyList<string> texts) : SchemaNode
{
    public IReadOnlyList<string> Texts { get; } = texts;
}

/// <summary>Any of several schemas (anyOf, or a list of types).</summary>
internal sealed class UnionNode(IReadOnlyList<SchemaNode> options) : SchemaNode
{
    public IReadOnlyList<SchemaNode> Options { get; } = options;
}
