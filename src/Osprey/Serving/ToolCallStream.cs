using System.Text;

namespace Osprey.Serving;

/// <summary>
/// Streamed reply text when tools were offered: hands out text as long as it cannot be the start of a
/// <c>&lt;tool_call&gt;</c> block, keeps everything from the first block on, and parses that at the end.
/// </summary>
public sealed class ToolCallStream
{
    readonly StringBuilder _all = new();
    int _sent;

    /// <summary>Takes a delta; returns the text that may be shown now (possibly empty).</summary>
    public string Add(string delta)
    {
        _all.Append(delta);
        var all = _all.ToString();
        var safe = ToolCallParser.SafeTextLength(all);
        if (safe <= _sent) return "";
        var text = all[_sent..safe];
        _sent = safe;
        return text;
    }

    /// <summary>The held-back rest: its text (unchanged when it holds no call) and the calls in it.</summary>
    public (string Text, IReadOnlyList<ParsedToolCall> Calls) Finish()
    {
        var rest = _all.ToString()[_sent..];
        var parsed = ToolCallParser.Parse(rest);
        if (parsed.Calls.Count == 0) return (rest, []);
        return (parsed.Text, parsed.Calls);
    }
}
