using System.Collections;
using Osprey.Hub;
using Parquet.Serialization;

namespace Osprey.Evaluation;

/// <summary>
/// Standard benchmarks by name, fetched through Osprey's hub client and caches with EvalScope's dataset ids:
/// ModelScope by default, Hugging Face with <c>--use_hf</c> (or USE_HF). Read in the hubs' Parquet layout:
/// mmlu (<c>cais/mmlu</c>: a folder per subject with <c>test-*.parquet</c> and <c>dev-*.parquet</c>; columns question,
/// choices, answer as an index) and gsm8k (ModelScope <c>AI-ModelScope/gsm8k</c>, Hugging Face <c>openai/gsm8k</c>:
/// <c>main/test-*.parquet</c> and <c>main/train-*.parquet</c>; question, answer ending in <c>#### N</c>).
/// </summary>
public static class HubBenchmarks
{
    /// <summary>The benchmark names and their (ModelScope, Hugging Face) dataset ids.</summary>
    public static IReadOnlyDictionary<string, (string ModelScope, string HuggingFace)> Ids { get; } = new Dictionary<string, (string, string)>
    {
        ["mmlu"] = ("cais/mmlu", "cais/mmlu"),
        ["gsm8k"] = ("AI-ModelScope/gsm8k", "openai/gsm8k"),
        ["bbh"] = ("evalscope/bbh", "lukaemon/bbh"),
        ["ifeval"] = ("opencompass/ifeval", "google/IFEval"),
    }.Concat(McBenchmarks.Ids).ToDictionary();

    /// <summary>The local folder of benchmark <paramref name="name"/>: the cached download, else downloaded now.</summary>
    public static string Resolve(string name, bool? useHf, TextWriter? log, CancellationToken cancel = default)
    {
        var (ms, hf) = Ids[name];
        var id = useHf ?? Osprey.Hub.Download.HubDownloaders.UseHfFromEnvironment() ? hf : ms;
        return HubResolver.ResolveDatasetAsync(id, useHf, offline: false, log, cancel).GetAwaiter().GetResult();
    }

    /// <summary>True when <paramref name="dir"/> holds the hub's Parquet layout (a split file under a subset folder).</summary>
    public static bool IsHubLayout(string dir) =>
        Directory.Exists(dir) && Directory.EnumerateFiles(dir, "*.parquet", SearchOption.AllDirectories).Any();

    /// <summary>mmlu's subjects in <paramref name="dir"/> (every subject folder with a test split, unless <paramref name="subsets"/> names them).</summary>
    public static IEnumerable<EvalSubset> Mmlu(string dataset, string dir, IReadOnlyList<string>? subsets)
    {
        var names = subsets ?? Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>()
            .Where(s => s is not "all" and not "auxiliary_train" && Split(Path.Combine(dir, s), "test") is not null)
            .Order(StringComparer.Ordinal).ToList();
        if (names.Count == 0) throw new OspreyException($"{dir} has no subject folders with test-*.parquet; it is not mmlu's hub layout.");
        foreach (var subject in names)
        {
            var folder = Path.Combine(dir, subject);
            var test = Split(folder, "test") ?? throw new OspreyException($"{folder} has no test-*.parquet; check the subset name '{subject}'.");
            var dev = Split(folder, "dev");
            yield return new EvalSubset(dataset, subject, EvalKind.MultipleChoice, McRows(dataset, subject, test), dev is null ? [] : McRows(dataset, subject, dev), BenchmarkCategories.Of("mmlu", subject));
        }
    }

    /// <summary>gsm8k's main subset from the hub layout in <paramref name="dir"/>.</summary>
    public static EvalSubset Gsm8k(string dataset, string dir)
    {
        var main = Path.Combine(dir, "main");
        var test = Split(main, "test") ?? throw new OspreyException($"{dir} has no main/test-*.parquet; it is not gsm8k's hub layout.");
        var train = Split(main, "train");
        return new EvalSubset(dataset, "main", EvalKind.Math, MathRows(dataset, test), train is null ? [] : MathRows(dataset, train), "math");
    }

    static string? Split(string folder, string split) =>
        Directory.Exists(folder) ? Directory.EnumerateFiles(folder, split + "-*.parquet").Order(StringComparer.Ordinal).FirstOrDefault() : null;

    internal static List<Dictionary<string, object>> Read(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult().Data.ToList();
        }
        catch (Exception e) when (e is not OspreyException and not OutOfMemoryException)
        {
            throw new OspreyException($"{path} could not be read as Parquet ({e.Message}); delete it from the cache to download it again.", e);
        }
    }

    static string Text(Dictionary<string, object> row, string name, string path, int index) =>
        row.TryGetValue(name, out var v) && v is string s ? s : throw new OspreyException($"{path}: row {index + 1} has no text column '{name}'.");

    static List<EvalItem> McRows(string dataset, string subject, string path)
    {
        var items = new List<EvalItem>();
        foreach (var (row, i) in Read(path).Select((r, i) => (r, i)))
        {
            var choices = row.TryGetValue("choices", out var c) && c is IEnumerable list and not string
                ? list.Cast<object?>().Select(o => o?.ToString() ?? "").ToList()
                : throw new OspreyException($"{path}: row {i + 1} has no list column 'choices'.");
            var answer = row.TryGetValue("answer", out var a) ? a : null;
            var gold = answer switch
            {
                long n when n >= 0 && n < choices.Count => ((char)('A' + n)).ToString(),
                int n when n >= 0 && n < choices.Count => ((char)('A' + n)).ToString(),
                string l when l.Length == 1 && l[0] >= 'A' && l[0] < 'A' + choices.Count => l,
                _ => throw new OspreyException($"{path}: row {i + 1} has answer {answer ?? "null"}, not an index of its {choices.Count} choices."),
            };
            items.Add(new EvalItem(dataset, subject, items.Count, EvalKind.MultipleChoice, Text(row, "question", path, i), choices, gold));
        }
        return items;
    }

    static List<EvalItem> MathRows(string dataset, string path)
    {
        var items = new List<EvalItem>();
        foreach (var (row, i) in Read(path).Select((r, i) => (r, i)))
        {
            var answer = Text(row, "answer", path, i);
            var hash = answer.LastIndexOf("####", StringComparison.Ordinal);
            if (hash < 0) throw new OspreyException($"{path}: row {i + 1}'s answer does not end with '#### N'.");
            items.Add(new EvalItem(dataset, "main", items.Count, EvalKind.Math, Text(row, "question", path, i), [], AnswerExtraction.NormalizeNumber(answer[(hash + 4)..]), null, answer[..hash].Trim()));
        }
        return items;
    }
}
