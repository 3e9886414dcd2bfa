using System.Text;
using System.Text.Json;

namespace Osprey.Inference.Constraints;

/// <summary>
/// A JSON schema (or plain JSON mode) compiled into an automaton over the bytes of the output, which constrained
/// decoding walks token by token: at each step only the tokens whose bytes keep the output a prefix of a valid
/// value may be picked, and the end only once the value is complete. The supported subset is
/// <see cref="SupportedKeywords"/>; anything else is refused with a <see cref="JsonSchemaException"/> naming the
/// keyword rather than silently ignored. Values are written compactly or with up to
/// <see cref="JsonMachine.MaxWhitespace"/> whitespace bytes in a row; object keys may come in any order, each once.
/// </summary>
public sealed class JsonSchemaGrammar
{
    /// <summary>The schema keywords that constrain the output.</summary>
    public static IReadOnlyList<string> SupportedKeywords { get; } =
        ["type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "minItems", "maxItems", "minLength", "maxLength"];

    /// <summary>Keywords that only describe (ignored, as a validator ignores them).</summary>
    public static IReadOnlyList<string> AnnotationKeywords { get; } =
        ["title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly"];

    static readonly string[] Types = ["object", "array", "string", "number", "integer", "boolean", "null"];

    internal SchemaNode Root => Text.Node;

    /// <summary>The value and the fixed texts around it.</summary>
    internal RootText Text { get; }

    JsonSchemaGrammar(SchemaNode root) => Text = new RootText(root, "", "");

    JsonSchemaGrammar(RootText text) => Text = text;

    // Grammars are kept by what they are made of (a schema's text, or the ids of their parts), so the same schema
    // in every request is the same automaton and its token masks, cached per tokenizer, carry over between requests.
    static readonly Dictionary<string, JsonSchemaGrammar> s_made = new(StringComparer.Ordinal);
    static long s_lastId;
    readonly long _id = Interlocked.Increment(ref s_lastId);

    /// <summary>Most grammars kept; past this the cache starts again (a bound on memory: masks are then recomputed).</summary>
    const int MaxKept = 256;

    static JsonSchemaGrammar Made(string key, Func<JsonSchemaGrammar> make)
    {
        lock (s_made)
            if (s_made.TryGetValue(key, out var kept)) return kept;
        var made = make(); // outside the lock: compiling may throw, and is not cached then
        lock (s_made)
        {
            if (s_made.TryGetValue(key, out var kept)) return kept;
            if (s_made.Count >= MaxKept) s_made.Clear();
            s_made[key] = made;
            return made;
        }
    }

    /// <summary>The fixed text the output starts with before the value ("" unless made by <see cref="Between"/>).</summary>
    public string Prefix => System.Text.Encoding.UTF8.GetString(System.Text.Encoding.Latin1.GetBytes(Text.Prefix));

    /// <summary>The fixed text the output ends with after the value.</summary>
    public string Suffix => System.Text.Encoding.UTF8.GetString(System.Text.Encoding.Latin1.GetBytes(Text.Suffix));

    /// <summary>OpenAI's json_object mode: any JSON object.</summary>
    public static JsonSchemaGrammar AnyObject { get; } = new(SchemaNode.Any.Object);

    /// <summary>Compiles a schema; throws <see cref="JsonSchemaException"/> naming the first unsupported place.</summary>
    public static JsonSchemaGrammar FromSchema(JsonElement schema) => FromSchema(schema, "schema");

    /// <summary>Compiles a schema whose place in a request is <paramref name="path"/> (the start of <see cref="JsonSchemaException.Path"/>).</summary>
    public static JsonSchemaGrammar FromSchema(JsonElement schema, string path) =>
        Made("S" + schema.GetRawText(), () => new(Compile(schema, path))); // the path only names errors, and a cached schema has none

    /// <summary>
    /// A closed object with exactly these properties, all required (keys in any order, each once): how a tool
    /// call's {"name": ..., "arguments": {...}} is built from compiled parts without losing their paths.
    /// </summary>
    public static JsonSchemaGrammar Object(IReadOnlyList<KeyValuePair<string, JsonSchemaGrammar>> properties)
    {
        ArgumentNullException.ThrowIfNull(properties);
        foreach (var p in properties) Plain(p.Value);
        return Made("O" + string.Concat(properties.Select(p => $"{p.Value._id}:{p.Key}\0")), () => new(new ObjectNode(properties.ToDictionary(p => p.Key, p => p.Value.Root, StringComparer.Ordinal), properties.Select(p => p.Key).ToList(), null)));
    }

    /// <summary>A value of any of <paramref name="options"/> (anyOf); one option is that option.</summary>
    public static JsonSchemaGrammar AnyOf(IReadOnlyList<JsonSchemaGrammar> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Count == 0) throw new ArgumentException("anyOf needs at least one option.", nameof(options));
        foreach (var o in options) Plain(o);
        return options.Count == 1 ? options[0] : Made("A" + string.Join(',', options.Select(o => o._id)), () => new(new UnionNode(options.Select(o => o.Root).ToArray())));
    }

    /// <summary>The output is <paramref name="prefix"/>, this grammar's value, then <paramref name="suffix"/>, both written exactly.</summary>
    public JsonSchemaGrammar Between(string prefix, string suffix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(suffix);
        Plain(this);
        return Made($"B{_id}:{prefix.Length}:{prefix}{suffix}", () => new(new RootText(Root, JsonText.Latin1(Encoding.UTF8.GetBytes(prefix)), JsonText.Latin1(Encoding.UTF8.GetBytes(suffix)))));
    }

    /// <summary>True when every value the grammar allows is a JSON object (so a parser that wants an object always gets one).</summary>
    public bool OnlyObjects => OnlyObjectsAt(Root);

    static bool OnlyObjectsAt(SchemaNode node) => node switch
    {
        ObjectNode => true,
        UnionNode u => u.Options.All(OnlyObjectsAt),
        LiteralNode l => l.Texts.All(t => t.StartsWith('{')),
        _ => false,
    };

    static void Plain(JsonSchemaGrammar g)
    {
        if (g.Text.Prefix.Length > 0 || g.Text.Suffix.Length > 0) throw new ArgumentException("A grammar with fixed text around its value cannot be part of another value.");
    }

    /// <summary>Compiles a schema given as JSON text.</summary>
    public static JsonSchemaGrammar FromSchema(string schemaJson)
    {
        using var doc = JsonDocument.Parse(schemaJson);
        return FromSchema(doc.RootElement);
    }

    internal GrammarState Start() => new([new ParseStack(new RootFrame(Text, false, 0, 0), null)]);

    /// <summary>True when <paramref name="text"/> is a complete value the schema allows, as the automaton reads it.</summary>
    public bool Accepts(string text) => Start().Step(Encoding.UTF8.GetBytes(text)) is { IsDead: false, CanEnd: true };

    /// <summary>True when <paramref name="text"/> can still be continued into a value the schema allows.</summary>
    public bool IsPrefix(string text) => !Start().Step(Encoding.UTF8.GetBytes(text)).IsDead;

    static SchemaNode Compile(JsonElement s, string path)
    {
        if (s.ValueKind == JsonValueKind.True) return SchemaNode.Any;
        if (s.ValueKind == JsonValueKind.False) return new UnionNode([]);
        if (s.ValueKind != JsonValueKind.Object) throw new JsonSchemaException(path, "a schema must be an object or a boolean.");
        var keywords = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in s.EnumerateObject())
        {
            if (AnnotationKeywords.Contains(p.Name)) continue;
            if (!SupportedKeywords.Contains(p.Name)) throw new JsonSchemaException($"{path}.{p.Name}", $"the keyword '{p.Name}' is not supported by constrained decoding.");
            keywords.Add(p.Name);
        }
        if (s.TryGetProperty("anyOf", out var anyOf))
        {
            if (keywords.Count > 1) throw new JsonSchemaException($"{path}.anyOf", "anyOf must be the only constraining keyword of its schema; move the others into each option.");
            if (anyOf.ValueKind != JsonValueKind.Array || anyOf.GetArrayLength() == 0) throw new JsonSchemaException($"{path}.anyOf", "anyOf must be a non-empty array of schemas.");
            return new UnionNode(anyOf.EnumerateArray().Select((o, i) => Compile(o, $"{path}.anyOf[{i}]")).ToArray());
        }
        var types = TypesOf(s, path);
        var parts = new List<SchemaNode>();
        foreach (var t in types)
        {
            if (t == "integer" && types.Contains("number")) continue;
            parts.Add(t switch
            {
                "object" => CompileObject(s, path),
                "array" => new ArrayNode(s.TryGetProperty("items", out var items) ? Compile(items, $"{path}.items") : SchemaNode.Any,
                    Count(s, "minItems", path) ?? 0, Count(s, "maxItems", path)),
                "string" => new StringNode(Count(s, "minLength", path) ?? 0, Count(s, "maxLength", path)),
                "number" => new NumberNode(false),
                "integer" => new NumberNode(true),
                "boolean" => new LiteralNode(["true", "false"]),
                _ => new LiteralNode(["null"]),
            });
        }
        SchemaNode node = parts.Count == 1 ? parts[0] : new UnionNode(parts);
        if (s.TryGetProperty("const", out var constant)) node = Fixed(node, [constant]);
        if (s.TryGetProperty("enum", out var values))
        {
            if (values.ValueKind != JsonValueKind.Array) throw new JsonSchemaException($"{path}.enum", "enum must be an array of values.");
            node = Fixed(node, values.EnumerateArray().ToArray());
        }
        return node;
    }

    /// <summary>The fixed values that also satisfy the rest of the schema, each as written compactly.</summary>
    static LiteralNode Fixed(SchemaNode rest, IReadOnlyList<JsonElement> values)
    {
        var grammar = new JsonSchemaGrammar(rest);
        var texts = values.Select(JsonText.Compact).Distinct().Where(t => grammar.Start().Step(Encoding.Latin1.GetBytes(t)) is { IsDead: false, CanEnd: true });
        return new LiteralNode(texts.ToArray());
    }

    static List<string> TypesOf(JsonElement s, string path)
    {
        if (!s.TryGetProperty("type", out var type)) return [.. Types];
        var names = type.ValueKind switch
        {
            JsonValueKind.String => [type.GetString()!],
            JsonValueKind.Array => type.EnumerateArray().Select(t => t.ValueKind == JsonValueKind.String ? t.GetString()! : "").ToList(),
            _ => new List<string> { "" },
        };
        foreach (var n in names)
            if (!Types.Contains(n)) throw new JsonSchemaException($"{path}.type", $"type must be one of {string.Join(", ", Types)} (or a list of them), got {type.GetRawText()}.");
        return names.Distinct().ToList();
    }

    static ObjectNode CompileObject(JsonElement s, string path)
    {
        var properties = new Dictionary<string, SchemaNode>(StringComparer.Ordinal);
        if (s.TryGetProperty("properties", out var props))
        {
            if (props.ValueKind != JsonValueKind.Object) throw new JsonSchemaException($"{path}.properties", "properties must be an object of schemas.");
            foreach (var p in props.EnumerateObject()) properties[p.Name] = Compile(p.Value, $"{path}.properties.{p.Name}");
        }
        var required = new List<string>();
        if (s.TryGetProperty("required", out var req))
        {
            if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                throw new JsonSchemaException($"{path}.required", "required must be an array of property names.");
            required.AddRange(req.EnumerateArray().Select(r => r.GetString()!).Distinct());
        }
        SchemaNode? additional = SchemaNode.Any;
        if (s.TryGetProperty("additionalProperties", out var add))
            additional = add.ValueKind == JsonValueKind.False ? null : Compile(add, $"{path}.additionalProperties");
        return new ObjectNode(properties, required, additional);
    }

    static int? Count(JsonElement s, string name, string path)
    {
        if (!s.TryGetProperty(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || d < 0 || d != Math.Floor(d) || d > int.MaxValue)
            throw new JsonSchemaException($"{path}.{name}", $"{name} must be a non-negative integer, got {v.GetRawText()}.");
        return (int)d;
    }
}
