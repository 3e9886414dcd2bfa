using System.Text.Encodings.Web;
using System.Text.Json;
using Osprey.Inference.Constraints;

namespace Osprey.Tests.Inference.Constraints;

/// <summary>
/// The schema automaton against JSON Schema's own test suite (draft 4, npm <c>json-schema-test-suite</c>): for
/// every case whose schema uses only the supported keywords, the automaton accepts exactly the instances the
/// suite marks valid (each written compactly by System.Text.Json). Cases with other keywords must be refused.
/// </summary>
public sealed class JsonSchemaGrammarTests
{
    /// <summary>The suite's files whose cases use the supported keywords (others are checked to be refused).</summary>
    public static TheoryData<string> Files() => new()
    {
        "type", "properties", "required", "additionalProperties", "items", "enum",
        "minItems", "maxItems", "minLength", "maxLength", "default",
    };

    static readonly JsonSerializerOptions s_write = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    [Theory]
    [MemberData(nameof(Files))]
    public void AcceptsExactlyTheSuitesValidInstances(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(JsonSchemaTestSuite.Draft4Folder(), file + ".json")));
        var checkedCases = 0;
        var failures = new List<string>();
        foreach (var group in doc.RootElement.EnumerateArray())
        {
            var description = group.GetProperty("description").GetString();
            JsonSchemaGrammar grammar;
            try
            {
                grammar = JsonSchemaGrammar.FromSchema(group.GetProperty("schema"));
            }
            catch (JsonSchemaException)
            {
                continue; // a keyword outside the subset: refused, never ignored (checked below)
            }
            foreach (var test in group.GetProperty("tests").EnumerateArray())
            {
                var text = JsonSerializer.Serialize(test.GetProperty("data"), s_write);
                var valid = test.GetProperty("valid").GetBoolean();
                checkedCases++;
                if (grammar.Accepts(text) != valid)
                    failures.Add($"{description} / {test.GetProperty("description").GetString()}: {text} should be {(valid ? "accepted" : "refused")}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(checkedCases > 0, $"{file}.json had no case in the supported subset");
    }

    [Theory]
    [InlineData("allOf"), InlineData("oneOf"), InlineData("not"), InlineData("pattern"), InlineData("minimum"), InlineData("maximum"),
     InlineData("multipleOf"), InlineData("uniqueItems"), InlineData("patternProperties"), InlineData("dependencies"), InlineData("minProperties")]
    public void RefusesEverySchemaOfAnUnsupportedKeyword(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(JsonSchemaTestSuite.Draft4Folder(), file + ".json")));
        foreach (var group in doc.RootElement.EnumerateArray())
        {
            var e = Assert.Throws<JsonSchemaException>(() => JsonSchemaGrammar.FromSchema(group.GetProperty("schema")));
            Assert.Contains("Supported keywords: type, properties", e.Message);
        }
    }

    [Theory]
    // The suite's draft-4 anyOf cases all mix anyOf with other keywords (refused); these are checked by hand.
    [InlineData("7", true), InlineData("\"x\"", true), InlineData("\"xy\"", false), InlineData("7.5", false), InlineData("null", false)]
    public void AnyOfTakesAValueOfEitherSchema(string text, bool expected)
    {
        var grammar = JsonSchemaGrammar.FromSchema("""{"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]}""");
        Assert.Equal(expected, grammar.Accepts(text));
    }

    [Fact]
    public void RefusalNamesThePathOfTheKeyword()
    {
        var e = Assert.Throws<JsonSchemaException>(() => JsonSchemaGrammar.FromSchema("""{"type":"object","properties":{"age":{"type":"integer","minimum":0}}}"""));
        Assert.Equal("schema.properties.age.minimum", e.Path);
    }

    [Theory]
    // Prefixes a model may stop at (hand-checked against RFC 8259 and the schema).
    [InlineData("""{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}""", """{"na""", true)]
    [InlineData("""{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}""", """{"x""", false)]
    [InlineData("""{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}""", """{}""", false)]
    [InlineData("""{"type":"integer"}""", "-", true)]
    [InlineData("""{"type":"integer"}""", "1e", false)]
    [InlineData("""{"type":"integer"}""", "1.", false)] // integers are written without a point, as every draft takes them
    [InlineData("""{"type":"integer"}""", "123456789012345", true)]
    [InlineData("""{"type":"integer"}""", "1234567890123456", false)] // at most 15 digits: exact in a double
    [InlineData("""{"type":"number"}""", "-0.5e-12", true)]
    [InlineData("""{"type":"number"}""", "1e", true)]
    [InlineData("""{"type":"number"}""", "01", false)]
    [InlineData("""{"type":"string","maxLength":2}""", "\"ab", true)]
    [InlineData("""{"type":"string","maxLength":2}""", "\"abc", false)]
    [InlineData("""{"type":"string"}""", "\"a\\u00", true)]
    [InlineData("""{"type":"string"}""", "\"a\\x", false)]
    [InlineData("""{"type":"string","maxLength":1}""", "\"a\\", false)] // at the limit no escape may start: it could not end
    [InlineData("""{"type":"string","maxLength":1}""", "\"\\ud83d\\udc", true)] // except the low half of a pair
    [InlineData("""{"type":"array","maxItems":1}""", "[1,", false)]
    public void PrefixesAreKeptOrRefused(string schema, string prefix, bool expected)
    {
        Assert.Equal(expected, JsonSchemaGrammar.FromSchema(schema).IsPrefix(prefix));
    }

    [Theory]
    [InlineData("{\"a\": [1, {\"b\": null}], \"c\": \"d\"}", true)]
    [InlineData("{\n  \"a\": true\n}", true)]
    [InlineData("[1]", false)]
    [InlineData("{\"a\":1,\"a\":2}", false)] // a key twice: the automaton writes each key once
    [InlineData("{\"a\":1} ", false)] // nothing after the value, so the end comes at once
    public void JsonObjectModeTakesAnyObject(string text, bool expected)
    {
        Assert.Equal(expected, JsonSchemaGrammar.AnyObject.Accepts(text));
    }
}
