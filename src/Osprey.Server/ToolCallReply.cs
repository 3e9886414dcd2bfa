using Osprey.Serving;

namespace Osprey.Server;

/// <summary>
/// The API's view of <see cref="ToolCallParser"/>: content (null when nothing but the calls was written) and the
/// calls with fresh ids; a reply without calls is its text unchanged.
/// </summary>
public static class ToolCallReply
{
    /// <summary>Splits a whole reply.</summary>
    public static (string? Content, IReadOnlyList<ToolCall> Calls) Parse(string text) => Shape(text, ToolCallParser.Parse(text));

    /// <summary>The end of a stream: the held-back rest as content (null when empty) and the calls in it.</summary>
    public static (string? Content, IReadOnlyList<ToolCall> Calls) Finish(ToolCallStream stream)
    {
        var (rest, calls) = stream.Finish();
        if (calls.Count == 0) return (rest.Length == 0 ? null : rest, []);
        return (rest.Length == 0 ? null : rest, calls.Select(c => new ToolCall(NewId(), c.Name, c.ArgumentsJson)).ToArray());
    }

    static (string?, IReadOnlyList<ToolCall>) Shape(string text, ParsedReply parsed) =>
        parsed.Calls.Count == 0
            ? (text, [])
            : (parsed.Text.Length == 0 ? null : parsed.Text, parsed.Calls.Select(c => new ToolCall(NewId(), c.Name, c.ArgumentsJson)).ToArray());

    /// <summary>A fresh tool call id, "call_" and 24 hex digits.</summary>
    public static string NewId() => "call_" + Guid.NewGuid().ToString("N")[..24];
}
