using System.Globalization;
using System.Text;
using Osprey.Io;
using Osprey.Tokenization;

namespace Osprey.Datasets;

/// <summary><c>osprey encode</c>'s output: encoded samples as JSON lines, or shown as text with their loss tokens marked.</summary>
public static class EncodedSampleWriter
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>
    /// Writes <paramref name="samples"/> as JSON lines to <paramref name="output"/> (stdout when null; the file is
    /// replaced only once complete) when <paramref name="json"/>, showing the first <paramref name="show"/> on
    /// <paramref name="stdout"/>; without <paramref name="json"/> it only shows them.
    /// </summary>
    public static void Write(IEnumerable<EncodedSample> samples, string? output, bool json, int? show, Tokenizer tokenizer, TextWriter stdout, bool color)
    {
        var shown = 0;
        if (!json)
        {
            foreach (var s in samples)
            {
                if (shown >= show) break;
                stdout.Write(Show(s, shown++, tokenizer, color));
            }
            stdout.Flush();
            return;
        }
        var temp = output is null ? null : $"{output}.tmp-{Environment.ProcessId}";
        var file = temp is null ? null : new StreamWriter(temp, append: false, Utf8, 1 << 20);
        try
        {
            var writer = file ?? stdout;
            var sb = new StringBuilder();
            foreach (var s in samples)
            {
                sb.Clear();
                AppendJson(sb, s);
                writer.WriteLine(sb);
                if (show is { } n && shown < n && file is not null) stdout.Write(Show(s, shown++, tokenizer, color));
            }
            writer.Flush();
            file?.Dispose();
            file = null;
            if (temp is not null) File.Move(temp, output!, overwrite: true);
        }
        finally
        {
            file?.Dispose();
            if (temp is not null && File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>One JSON line: {"input_ids": [...], "labels": [...]} (and "position_ids" when packed).</summary>
    public static void AppendJson(StringBuilder sb, EncodedSample s)
    {
        sb.Append("{\"input_ids\":");
        JsonText.AppendInts(sb, s.InputIds);
        sb.Append(",\"labels\":");
        JsonText.AppendInts(sb, s.Labels);
        if (s.PositionIds is { } p)
        {
            sb.Append(",\"position_ids\":");
            JsonText.AppendInts(sb, p);
        }
        sb.Append('}');
    }

    /// <summary>A sample as text: the decoded tokens, loss-carrying runs in green (color) or between ⟦ and ⟧, then the counts.</summary>
    public static string Show(EncodedSample s, int index, Tokenizer tokenizer, bool color)
    {
        var sb = new StringBuilder();
        var packed = s.PositionIds is { } p ? p.Count(x => x == 0) : 1;
        sb.Append(CultureInfo.InvariantCulture, $"--- sample {index}: {s.Length} tokens, {s.LabelledTokenCount} with loss");
        if (s.PositionIds is not null) sb.Append(CultureInfo.InvariantCulture, $", {packed} packed");
        sb.Append('\n');
        var start = 0;
        while (start < s.Length)
        {
            var labelled = s.Labels[start] != EncodedSample.IgnoreIndex;
            var end = start + 1;
            while (end < s.Length && (s.Labels[end] != EncodedSample.IgnoreIndex) == labelled) end++;
            var text = tokenizer.Decode(s.InputIds[start..end]);
            if (labelled) sb.Append(color ? "\u001b[32m" : "⟦").Append(text).Append(color ? "\u001b[0m" : "⟧");
            else sb.Append(text);
            start = end;
        }
        return sb.Append('\n').ToString();
    }
}
