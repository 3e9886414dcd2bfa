using System.Text.Json;

namespace Osprey.Serving;

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

    /// <summary>
    /// What comes before a call's JSON as the Hermes-style templates write it (Qwen2.5/Qwen3 render an assistant
    /// call as "&lt;tool_call&gt;\n{...}\n&lt;/tool_call&gt;"): the text a forced call is decoded to start with.
    /// </summary>
    public const string CallPrefix = OpenTag + "\n";

    /// <summary>What comes after a call's JSON, as <see cref="CallPrefix"/>.</summary>
    public const string CallSuffix = "\n" + CloseTag;

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
