using System.Text.Json;

namespace Osprey.Server;

/// <summary>One function call the model asked for.</summary>
/// <param name="Id">"call_" plus a random hex id.</param>
/// <param name="Name">The function's name.</param>
/// <param name="Arguments">The arguments as a JSON string (OpenAI's shape).</param>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>
/// Hermes-style tool calls (Qwen's format): <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>
/// blocks in the reply become tool calls; the text outside the blocks stays content. A block whose body is not
/// a JSON object with a string "name" is left in the content as written.
/// </summary>
public static class ToolCallParser
{
    /// <summary>The tag that opens a call.</summary>
    public const string Open = "<tool_call>";
    /// <summary>The tag that closes a call.</summary>
    public const string Close = "</tool_call>";

    /// <summary>Splits <paramref name="text"/> into content (null when only whitespace remains) and tool calls.</summary>
    public static (string? Content, IReadOnlyList<ToolCall> Calls) Parse(string text)
    {
        var calls = new List<ToolCall>();
        var content = new System.Text.StringBuilder();
        var at = 0;
        while (at < text.Length)
        {
            var open = text.IndexOf(Open, at, StringComparison.Ordinal);
            if (open < 0) break;
            var bodyStart = open + Open.Length;
            var close = text.IndexOf(Close, bodyStart, StringComparison.Ordinal);
            // A call cut off by max_tokens has no closing tag: parse what there is, to the end.
            var bodyEnd = close < 0 ? text.Length : close;
            var end = close < 0 ? text.Length : close + Close.Length;
            if (TryCall(text[bodyStart..bodyEnd], out var call))
            {
                content.Append(text, at, open - at);
                calls.Add(call);
            }
            else
            {
                content.Append(text, at, end - at);
            }
            at = end;
        }
        if (at < text.Length) content.Append(text, at, text.Length - at);
        if (calls.Count == 0) return (text, calls);
        var rest = content.ToString().Trim();
        return (rest.Length == 0 ? null : rest, calls);
    }

    static bool TryCall(string body, out ToolCall call)
    {
        call = null!;
        try
        {
            using var doc = JsonDocument.Parse(body.Trim());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String) return false;
            var args = "{}";
            if (root.TryGetProperty("arguments", out var a) || root.TryGetProperty("parameters", out a))
                args = a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText();
            call = new ToolCall(NewId(), name.GetString()!, args);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>A fresh tool call id, "call_" and 24 hex digits.</summary>
    public static string NewId() => "call_" + Guid.NewGuid().ToString("N")[..24];
}

/// <summary>
/// Streams a reply's text while tool calls may be in it: text is handed out as it comes, except from the first
/// <c>&lt;tool_call&gt;</c> on (and any tail that might be the start of that tag), which is kept for
/// <see cref="ToolCallParser.Parse"/> at the end.
/// </summary>
internal sealed class ToolCallStream
{
    readonly System.Text.StringBuilder _held = new();
    bool _inCall;

    /// <summary>Adds a delta; returns the text that can go out now.</summary>
    public string Add(string delta)
    {
        if (_inCall) { _held.Append(delta); return ""; }
        _held.Append(delta);
        var s = _held.ToString();
        var open = s.IndexOf(ToolCallParser.Open, StringComparison.Ordinal);
        if (open >= 0)
        {
            _inCall = true;
            _held.Clear().Append(s, open, s.Length - open);
            return s[..open];
        }
        // Keep a tail that could still grow into "<tool_call>".
        var keep = 0;
        for (var k = Math.Min(ToolCallParser.Open.Length - 1, s.Length); k > 0; k--)
            if (ToolCallParser.Open.StartsWith(s[^k..], StringComparison.Ordinal)) { keep = k; break; }
        _held.Clear().Append(s, s.Length - keep, keep);
        return s[..^keep];
    }

    /// <summary>At the end: the remaining content and the tool calls.</summary>
    public (string? Content, IReadOnlyList<ToolCall> Calls) Finish()
    {
        var rest = _held.ToString();
        _held.Clear();
        if (rest.Length == 0) return (null, []);
        var (content, calls) = ToolCallParser.Parse(rest);
        return (string.IsNullOrEmpty(content) ? null : content, calls);
    }
}
