using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;


namespace Osprey.Inference;

/// <summary>
/// Answers (or, with a reward model, scores) every row of an inference dataset and writes each row with its
/// "response" (or "score") as a JSON line: to <c>stdout</c>, or to a temporary file renamed to the result path at
/// the end, so the result file is either the whole answer or untouched. Progress goes to <c>stderr</c>.
/// </summary>
public static class DatasetInference
{
    static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>
    /// Answers <paramref name="rows"/> (prompt ids <paramref name="prompts"/>), <paramref name="maxBatch"/> rows per
    /// left-padded batched generation; with <paramref name="stream"/> each reply is also printed as it comes.
    /// </summary>
    public static int Generate(TokenGenerator generator, ChatPrompt chat, IReadOnlyList<InferenceRow> rows, IReadOnlyList<int[]> prompts, SamplingParams options,
        int maxBatch, bool stream, string? resultPath, TextWriter stdout, TextWriter stderr)
    {
        string? temp = null;
        TextWriter? file = null;
        if (resultPath is not null)
        {
            var full = Path.GetFullPath(resultPath);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
            file = new StreamWriter(temp, append: false, Utf8);
        }

        var stop = options.StopTokenIds;
        var done = false;
        try
        {
            var output = file ?? stdout;
            var watch = Stopwatch.StartNew();
            long newTokens = 0;
            for (var start = 0; start < rows.Count; start += maxBatch)
            {
                var count = Math.Min(maxBatch, rows.Count - start);
                var batch = prompts.Skip(start).Take(count).Select(p => (IReadOnlyList<int>)p).ToList();
                IReadOnlyList<GenerationResult> results;
                if (stream)
                {
                    var text = new StreamingText(t => chat.DecodeReply(t, stop));
                    results = generator.Generate(batch, options, e => { stdout.Write(text.Add(e.TokenId)); stdout.Flush(); });
                    stdout.WriteLine(text.Finish());
                }
                else
                {
                    results = generator.Generate(batch, options);
                }
                for (var i = 0; i < count; i++)
                {
                    newTokens += results[i].Tokens.Count;
                    output.WriteLine(JsonText.Of(InferenceDataset.Answered(rows[start + i], chat.DecodeReply(results[i].Tokens, stop))));
                }
                output.Flush();
                var seconds = watch.Elapsed.TotalSeconds;
                stderr.WriteLine(string.Format(CultureInfo.InvariantCulture, "osprey: {0}/{1} rows answered, {2} new tokens in {3:F1} s ({4:F1} tokens/s).",
                    start + count, rows.Count, newTokens, seconds, seconds > 0 ? newTokens / seconds : 0));
            }
            if (file is not null)
            {
                file.Dispose();
                file = null;
                File.Move(temp!, resultPath!, overwrite: true);
                stderr.WriteLine($"osprey: wrote {rows.Count} rows to {resultPath}.");
            }
            done = true;
            return 0;
        }
        finally
        {
            file?.Dispose();
            if (!done && temp is not null && File.Exists(temp))
                stderr.WriteLine($"osprey: stopped early; the rows answered so far are in {temp} and {resultPath} was not written.");
        }
    }

    /// <summary>Reward model: every row plus "score" (a list when the head has several labels), as JSON lines.</summary>
    public static int Score(CausalLM model, IReadOnlyList<InferenceRow> rows, IReadOnlyList<int[]> encoded, string? resultPath, TextWriter stdout, TextWriter stderr)
    {
        var lines = new StringBuilder();
        for (var i = 0; i < rows.Count; i++)
        {
            var record = (JsonObject)rows[i].Record.DeepClone();
            var values = TokenIdInference.Score(model, encoded[i]);
            record["score"] = values.Length == 1 ? JsonValue.Create((double)values[0]) : new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create((double)v)).ToArray());
            lines.Append(JsonText.Of(record)).Append('\n');
        }
        return WriteScored(lines.ToString(), rows.Count, resultPath, stdout, stderr);
    }

    /// <summary>Scored rows (JSON lines) to stdout, or to <paramref name="resultPath"/> through a temporary file.</summary>
    internal static int WriteScored(string lines, int count, string? resultPath, TextWriter stdout, TextWriter stderr)
    {
        if (resultPath is null)
        {
            stdout.Write(lines);
            return 0;
        }
        var full = Path.GetFullPath(resultPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full + ".tmp", lines, Utf8);
        File.Move(full + ".tmp", full, overwrite: true);
        stderr.WriteLine($"osprey: wrote {count} scored rows to {resultPath}.");
        return 0;
    }
}
