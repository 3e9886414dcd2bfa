using System.Text;
using System.Text.Json;

namespace Osprey.Serving;

/// <summary>One function call a model wrote in its reply.</summary>
/// <param name="Name">The function's name.</param>
/// <param name="ArgumentsJson">The arguments as a JSON object text (OpenAI's <c>function.arguments</c>); "{}" when the model gave none.</param>
public sealed record ParsedToolCall(string Name, string ArgumentsJson)
{
    /// <summary>The arguments as a dictionary of plain values (strings, numbers, booleans, lists, dictionaries; JSON null as null).</summary>
    public Dictionary<string, object?> Arguments()
    {
        using var doc = JsonDocument.Parse(ArgumentsJson);
        return doc.RootElement.ValueKind == JsonValueKind.Object
            ? doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => Plain(p.Value))
            : [];
    }

    static object? Plain(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(Plain).ToList(),
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => Plain(p.Value)),
        _ => null,
    };
}

/// <summary>A reply split into its plain text and the function calls it holds.</summary>
/// <param name="Text">The reply without its tool-call blocks, trimmed.</param>
/// <param name="Calls">The calls in the order written.</param>
public sealed record ParsedReply(string Text, IReadOnlyList<ParsedToolCall> Calls);

/// <summary>
/// Finds Hermes-style function calls in model output, the format of Qwen2.5/Qwen3 and other chat templates that
/// render OpenAI tools: <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>. A block whose
/// JSON does not parse, or has no name, stays in the text. A last block the output ended inside (no closing tag)
/// still counts when its JSON is complete.
/// </summary>
public static class ToolCallParser
{
    /// <summary>The tag that opens a call.</summary>
    public const string OpenTag = "<tool_call>";

    /// <summary>The tag that closes a call.</summary>
    public const string CloseTag = "</tool_call>";

    /// <summary>Splits <paramref name="output"/> into text and calls.</summary>
    public static ParsedReply Parse(string output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var calls = new List<ParsedToolCall>();
        var text = new System.Text.StringBuilder();
        var at = 0;
        while (at < output.Length)
        {
            var open = output.IndexOf(OpenTag, at, StringComparison.Ordinal);
            if (open < 0)
            {
                text.Append(output, at, output.Length - at);
                break;
            }
            var bodyStart = open + OpenTag.Length;
            var close = output.IndexOf(CloseTag, bodyStart, StringComparison.Ordinal);
            var bodyEnd = close < 0 ? output.Length : close;
            var next = close < 0 ? output.Length : close + CloseTag.Length;
            if (TryCall(output[bodyStart..bodyEnd], out var call))
            {
                text.Append(output, at, open - at);
                calls.Add(call);
            }
            else
            {
                text.Append(output, at, next - at);
            }
            at = next;
        }
        return new ParsedReply(text.ToString().Trim(), calls);
    }

    /// <summary>
    /// How much of streamed <paramref name="text"/> can be shown as plain text now: everything before the first
    /// <see cref="OpenTag"/>, and short of a tail that could still grow into one.
    /// </summary>
    public static int SafeTextLength(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var open = text.IndexOf(OpenTag, StringComparison.Ordinal);
        if (open >= 0) return open;
        for (var keep = Math.Min(OpenTag.Length - 1, text.Length); keep > 0; keep--)
            if (text.AsSpan(text.Length - keep).SequenceEqual(OpenTag.AsSpan(0, keep))) return text.Length - keep;
        return text.Length;
    }

    static bool TryCall(string body, out ParsedToolCall call)
    {
        call = null!;
        try
        {
            using var doc = JsonDocument.Parse(body.Trim());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return false;
            if (!root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(name.GetString())) return false;
            var args = "{}";
            if (root.TryGetProperty("arguments", out var a) || root.TryGetProperty("parameters", out a))
            {
                args = a.ValueKind switch
                {
                    JsonValueKind.Object => a.GetRawText(),
                    // Some models write the arguments as a JSON string, as OpenAI's API carries them.
                    JsonValueKind.String when IsJsonObject(a.GetString()!) => a.GetString()!,
                    JsonValueKind.Null => "{}",
                    _ => null!,
                };
                if (args is null) return false;
            }
            call = new ParsedToolCall(name.GetString()!, args);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    static bool IsJsonObject(string s)
    {
        try
        {
            using var doc = JsonDocument.Parse(s);
            return doc.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

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
