using System.Text.Json;
using Osprey.Inference.Constraints;
using Osprey.Serving;

namespace Osprey.Tests.Inference.Constraints;

/// <summary>
/// The forced-call grammar on hand-written texts: the Hermes call format Qwen's template writes
/// (<c>&lt;tool_call&gt;\n{...}\n&lt;/tool_call&gt;</c>, as in Qwen2.5's tokenizer_config.json chat_template), the
/// fixed name, the arguments held to the parameters schema, and fixed text around a value in general.
/// </summary>
public sealed class ToolCallGrammarTests
{
    static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    static readonly JsonElement Weather = Json("""
        {"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"],"additionalProperties":false}
        """);

    [Fact]
    public void ANamedCallIsTheTagsAroundNameAndArguments()
    {
        var g = ToolCallGrammar.For([("get_weather", Weather, "tools[0].function.parameters")]);
        Assert.True(g.Accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>"));
        Assert.True(g.Accepts("<tool_call>\n{\"arguments\":{\"city\":\"Oslo\"},\"name\":\"get_weather\"}\n</tool_call>")); // keys in any order
        Assert.False(g.Accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}")); // no closing tag yet
        Assert.True(g.IsPrefix("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool"));
        Assert.False(g.IsPrefix("Sure! <tool_call>")); // nothing before the call
        Assert.False(g.IsPrefix("<tool_call>\n{\"name\": \"get_time\"")); // another function's name
        Assert.False(g.IsPrefix("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": \"2\"")); // days must be an integer
        Assert.False(g.Accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 2}}\n</tool_call>")); // city is required
        Assert.False(g.IsPrefix("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}, \"id\"")); // no other keys in the call
        Assert.False(g.Accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n")); // nothing after
    }

    [Fact]
    public void RequiredIsAnyOfTheFunctions()
    {
        var g = ToolCallGrammar.For([("get_weather", Weather, "tools[0].function.parameters"), ("now", null, "tools[1].function.parameters")]);
        Assert.True(g.Accepts("<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
        Assert.False(g.Accepts("<tool_call>\n{\"name\": \"now\", \"arguments\": {\"x\": 1}}\n</tool_call>")); // no parameters: arguments are {}
        Assert.True(g.Accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"\"}}\n</tool_call>"));
        Assert.False(g.IsPrefix("<tool_call>\n{\"name\": \"nowhere\""));
    }

    [Fact]
    public void ParametersWithoutATypeAreAnObjectAndOtherTypesAreRefused()
    {
        var g = ToolCallGrammar.For([("f", Json("""{"properties":{"x":{"type":"boolean"}}}"""), "tools[0].function.parameters")]);
        Assert.True(g.Accepts("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": true, \"y\": [1]}}\n</tool_call>"));
        Assert.False(g.IsPrefix("<tool_call>\n{\"name\": \"f\", \"arguments\": ["));
        var e = Assert.Throws<JsonSchemaException>(() => ToolCallGrammar.For([("f", Json("""{"type":"string"}"""), "tools[2].function.parameters")]));
        Assert.Equal("tools[2].function.parameters.type", e.Path);
        var k = Assert.Throws<JsonSchemaException>(() => ToolCallGrammar.For([("f", Json("""{"type":"object","properties":{"n":{"type":"integer","minimum":1}}}"""), "tools[0].function.parameters")]));
        Assert.Equal("tools[0].function.parameters.properties.n.minimum", k.Path);
    }

    [Fact]
    public void FixedTextSurroundsAnyValueIncludingOnesWithoutAClosingByte()
    {
        // A number has no closing byte: the suffix's first byte is what ends it.
        var g = JsonSchemaGrammar.FromSchema("""{"type":"integer"}""").Between("n=", ";");
        Assert.True(g.Accepts("n=12;"));
        Assert.True(g.Accepts("n= 7;")); // whitespace before the value, as at the start of any output
        Assert.False(g.Accepts("n=12"));
        Assert.False(g.Accepts("12;"));
        Assert.False(g.Accepts("n=1.5;"));
        var text = JsonSchemaGrammar.FromSchema("""{"type":"string"}""").Between("«", "»"); // non-ASCII fixed text is matched as UTF-8
        Assert.True(text.Accepts("«\"a\"»"));
        Assert.Equal("«", text.Prefix);
        Assert.Throws<ArgumentException>(() => JsonSchemaGrammar.AnyOf([text]));
    }
}
