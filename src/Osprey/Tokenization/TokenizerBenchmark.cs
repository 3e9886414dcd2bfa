using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Io;

namespace Osprey.Tokenization;

/// <summary><c>osprey tokenize --benchmark_file</c>: encoding throughput of a tokenizer over a file's lines.</summary>
public static class TokenizerBenchmark
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Times encoding the file's lines; one JSON line of totals and rates.</summary>
    public static string Run(Tokenizer tokenizer, string path, int threads, int repeat)
    {
        var lines = File.ReadAllLines(path, Utf8);
        long chars = 0, bytes = 0;
        foreach (var line in lines)
        {
            chars += line.EnumerateRunes().Count();
            bytes += Utf8.GetByteCount(line);
        }

        long Pass()
        {
            long tokens = 0;
            if (threads == 1)
            {
                foreach (var line in lines) tokens += tokenizer.Encode(line, addSpecialTokens: false).Ids.Length;
            }
            else
            {
                foreach (var e in tokenizer.EncodeBatch(lines, addSpecialTokens: false, maxDegreeOfParallelism: threads)) tokens += e.Ids.Length;
            }
            return tokens;
        }

        // Warm-up (JIT tiers, BPE caches): at least one pass and at least one second, so the timed passes measure
        // steady-state code rather than the first tiers of compilation.
        var warmUp = Stopwatch.StartNew();
        var tokenCount = Pass();
        while (warmUp.Elapsed < TimeSpan.FromSeconds(1)) Pass();
        var watch = Stopwatch.StartNew();
        for (var r = 0; r < repeat; r++) Pass();
        var seconds = watch.Elapsed.TotalSeconds / repeat;

        var result = new JsonObject
        {
            ["lines"] = lines.Length,
            ["chars"] = chars,
            ["bytes"] = bytes,
            ["tokens"] = tokenCount,
            ["seconds"] = Math.Round(seconds, 6),
            ["tokens_per_s"] = Math.Round(seconds > 0 ? tokenCount / seconds : 0, 1),
            ["mb_per_s"] = Math.Round(seconds > 0 ? bytes / 1e6 / seconds : 0, 3),
            ["threads"] = threads,
        };
        return JsonText.Of(result);
    }
}
