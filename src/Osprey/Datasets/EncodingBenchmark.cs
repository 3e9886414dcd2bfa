using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>
/// How fast <see cref="DatasetEncoder"/> encodes, on synthetic Alpaca rows fixed by a seed (so runs on different
/// machines or commits compare), single-threaded and on all threads. <c>osprey encode --benchmark_rows N</c> prints it.
/// </summary>
public static class EncodingBenchmark
{
    /// <summary>
    /// Times encoding <paramref name="rows"/> synthetic Alpaca rows on 1 thread and on all (<paramref name="threads"/>
    /// when positive), and the encoding cache's save and load: <c>{"rows", "cpu_count", "seed", "threads_1": {...}, "threads_N": {...}}</c>.
    /// </summary>
    public static JsonObject Run(DatasetEncoder encoder, int rows, int seed, int threads)
    {
        var data = SyntheticAlpaca(rows, seed);
        var all = threads > 0 ? threads : Environment.ProcessorCount;
        var result = new JsonObject { ["rows"] = rows, ["cpu_count"] = Environment.ProcessorCount, ["seed"] = seed };
        // Warm-up: JIT tiers and the tokenizer's caches.
        var warm = WithThreads(encoder, all);
        var watch = Stopwatch.StartNew();
        var warmRows = data.Take(Math.Min(rows, 2000)).ToList();
        do warm.EncodeAll(warmRows);
        while (rows >= 10_000 && watch.Elapsed < TimeSpan.FromSeconds(2));
        var counts = all == 1 ? new[] { 1 } : new[] { 1, all };
        foreach (var t in counts)
        {
            var enc = WithThreads(encoder, t);
            var stats = new EncodingStats();
            watch.Restart();
            var samples = enc.EncodeAll(data, stats);
            var seconds = watch.Elapsed.TotalSeconds;
            var entry = new JsonObject
            {
                ["threads"] = t,
                ["samples"] = samples.Count,
                ["tokens"] = stats.Tokens,
                ["labelled_tokens"] = stats.LabelledTokens,
                ["seconds"] = Math.Round(seconds, 3),
                ["rows_per_s"] = Math.Round(rows / seconds, 1),
                ["tokens_per_s"] = Math.Round(stats.Tokens / seconds, 1),
            };
            if (t == counts[^1])
            {
                // The cache's part: flatten, save, load back.
                using var dir = new TempFolder();
                watch.Restart();
                var ds = EncodedDataset.FromSamples(samples);
                var path = Path.Combine(dir.Path, "train.bin");
                ds.Save(path);
                var saveSeconds = watch.Elapsed.TotalSeconds;
                watch.Restart();
                var loaded = EncodedDataset.Load(path);
                entry["cache_save_s"] = Math.Round(saveSeconds, 3);
                entry["cache_load_s"] = Math.Round(watch.Elapsed.TotalSeconds, 3);
                entry["cache_bytes"] = new FileInfo(path).Length;
                if (loaded.Count != ds.Count) throw new InvalidOperationException("cache round trip lost samples");
            }
            result[$"threads_{t}"] = entry;
        }
        return result;
    }

    private static DatasetEncoder WithThreads(DatasetEncoder e, int threads) => new(e.Tokenizer, new EncodingOptions
    {
        Template = e.Options.Template, System = e.Options.System, LossScale = e.Options.LossScale, MaxLength = e.Options.MaxLength,
        Truncation = e.Options.Truncation, Packing = e.Options.Packing, Strict = e.Options.Strict, Threads = threads, Extra = e.Options.Extra,
    });

    /// <summary>Alpaca-style rows (instruction, optional input, output) of English-like words, fixed by <paramref name="seed"/>.</summary>
    public static List<DatasetRow> SyntheticAlpaca(int rows, int seed)
    {
        // A Zipf-like vocabulary of 20,000 pseudo-words from syllables (plus some digits and punctuation), so the
        // tokenizer sees realistic word variety rather than a few words its caches always hit.
        string[] syllables =
        [
            "a", "ab", "ac", "al", "an", "ar", "as", "at", "be", "ca", "ce", "co", "de", "di", "do", "el", "en", "er", "es", "fa",
            "fi", "ga", "ge", "ha", "he", "hi", "in", "is", "it", "ka", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne",
            "ni", "no", "on", "or", "pa", "pe", "pi", "po", "qu", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti",
            "to", "tr", "un", "ur", "va", "ve", "vi", "wa", "we", "xi", "yo", "za", "ze", "tion", "ing", "ed", "ly", "ment", "ous",
        ];
        var vocab = new Random(seed ^ 0x5eed);
        var words = new string[20_000];
        for (var w = 0; w < words.Length; w++)
        {
            var n = 1 + vocab.Next(4);
            var sbw = new StringBuilder();
            for (var k = 0; k < n; k++) sbw.Append(syllables[vocab.Next(syllables.Length)]);
            if (vocab.Next(40) == 0) sbw.Append(vocab.Next(10_000).ToString(CultureInfo.InvariantCulture));
            words[w] = sbw.ToString();
        }
        var random = new Random(seed);
        string Words(int min, int max)
        {
            var n = random.Next(min, max + 1);
            var sb = new StringBuilder();
            for (var i = 0; i < n; i++)
            {
                if (i > 0) sb.Append(random.Next(12) == 0 ? ", " : " ");
                // Zipf-like: index = N^u - 1 for uniform u favours the first words.
                var w = words[Math.Min(words.Length - 1, (int)Math.Pow(words.Length, random.NextDouble()) - 1)];
                sb.Append(i == 0 ? char.ToUpperInvariant(w[0]) + w[1..] : w);
            }
            return sb.Append('.').ToString();
        }
        var result = new List<DatasetRow>(rows);
        for (var i = 0; i < rows; i++)
        {
            var instruction = Words(6, 30);
            var input = random.Next(2) == 0 ? "" : Words(5, 60);
            var output = Words(20, 250);
            var query = input.Length == 0 ? instruction : instruction + "\n" + input;
            var conversation = new Conversation(
            [
                new Dictionary<string, object?> { ["role"] = "user", ["content"] = query },
                new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = output },
            ]);
            result.Add(new DatasetRow("synthetic-alpaca", i + 1, DatasetFormat.Alpaca, conversation, null));
        }
        return result;
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "osprey-bench-" + Guid.NewGuid().ToString("N"));

        public TempFolder() => Directory.CreateDirectory(Path);

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
