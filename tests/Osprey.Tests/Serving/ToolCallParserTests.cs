using Osprey.Serving;

namespace Osprey.Tests.Serving;

/// <summary><see cref="ToolCallParser"/>: Hermes &lt;tool_call&gt; blocks in model output.</summary>
public sealed class ToolCallParserTests
{
    [Fact]
    public void OneCallIsParsedAndRemovedFromTheText()
    {
        var reply = ToolCallParser.Parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>");
        Assert.Equal("Let me check.", reply.Text);
        var call = Assert.Single(reply.Calls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("{\"city\": \"Paris\", \"days\": 2}", call.ArgumentsJson);
        var args = call.Arguments();
        Assert.Equal("Paris", args["city"]);
        Assert.Equal(2L, args["days"]);
    }

    [Fact]
    public void SeveralCallsKeepTheirOrder()
    {
        var reply = ToolCallParser.Parse("<tool_call>{\"name\":\"a\",\"arguments\":{}}</tool_call>\n<tool_call>{\"name\":\"b\",\"arguments\":{\"x\":[1,true,null]}}</tool_call>");
        Assert.Equal("", reply.Text);
        Assert.Equal(["a", "b"], reply.Calls.Select(c => c.Name));
        Assert.Equal(new List<object?> { 1L, true, null }, reply.Calls[1].Arguments()["x"]);
    }

    [Fact]
    public void ArgumentsAsAJsonStringOrMissingAreAccepted()
    {
        var reply = ToolCallParser.Parse("<tool_call>{\"name\":\"a\",\"arguments\":\"{\\\"q\\\": 1}\"}</tool_call><tool_call>{\"name\":\"b\"}</tool_call>");
        Assert.Equal("{\"q\": 1}", reply.Calls[0].ArgumentsJson);
        Assert.Equal("{}", reply.Calls[1].ArgumentsJson);
        Assert.Empty(reply.Calls[1].Arguments());
    }

    [Fact]
    public void ABlockThatIsNotACallStaysText()
    {
        const string output = "<tool_call>not json</tool_call> and <tool_call>{\"arguments\":{}}</tool_call> and <tool_call>[1]</tool_call>";
        var reply = ToolCallParser.Parse(output);
        Assert.Empty(reply.Calls);
        Assert.Equal(output, reply.Text);
    }

    [Fact]
    public void AnUnclosedLastBlockCountsWhenItsJsonIsComplete()
    {
        var complete = ToolCallParser.Parse("ok <tool_call>{\"name\":\"a\",\"arguments\":{\"k\":\"v\"}}");
        Assert.Equal("ok", complete.Text);
        Assert.Equal("a", Assert.Single(complete.Calls).Name);

        var cut = ToolCallParser.Parse("ok <tool_call>{\"name\":\"a\",\"argu");
        Assert.Empty(cut.Calls);
        Assert.Equal("ok <tool_call>{\"name\":\"a\",\"argu", cut.Text);
    }

    [Fact]
    public void TextWithoutCallsIsUnchanged()
    {
        var reply = ToolCallParser.Parse("  just text <b>bold</b>  ");
        Assert.Equal("just text <b>bold</b>", reply.Text);
        Assert.Empty(reply.Calls);
    }

    [Theory]
    [InlineData("hello", 5)]
    [InlineData("hello <", 6)]
    [InlineData("hello <tool_c", 6)]
    [InlineData("hello <tool_call>{", 6)]
    [InlineData("a < b", 5)]
    [InlineData("<tool", 0)]
    [InlineData("", 0)]
    public void SafeTextLengthHoldsBackWhatMayOpenACall(string text, int safe) =>
        Assert.Equal(safe, ToolCallParser.SafeTextLength(text));

    [Fact]
    public void StreamedTextIsHeldBackOnlyWhereACallMayStart()
    {
        var stream = new ToolCallStream();
        Assert.Equal("Let me ", stream.Add("Let me "));
        Assert.Equal("check. ", stream.Add("check. <to"));
        Assert.Equal("", stream.Add("ol_call>{\"name\":\"f\","));
        Assert.Equal("", stream.Add("\"arguments\":{\"a\":1}}</tool_call>"));
        var (text, calls) = stream.Finish();
        Assert.Equal("", text);
        Assert.Equal("{\"a\":1}", Assert.Single(calls).ArgumentsJson);
    }

    [Fact]
    public void AStreamWithoutCallsGivesBackAllItsText()
    {
        var stream = new ToolCallStream();
        var shown = stream.Add("a <") + stream.Add("b> c <tool");
        Assert.Equal("a <b> c ", shown);
        var (text, calls) = stream.Finish();
        Assert.Equal("<tool", text);
        Assert.Empty(calls);
    }
}
