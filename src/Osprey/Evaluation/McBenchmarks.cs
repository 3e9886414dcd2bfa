using System.Collections;
using System.Text.RegularExpressions;

namespace Osprey.Evaluation;

/// <summary>
/// The multiple-choice benchmarks by name beyond mmlu, each as EvalScope defines it (dataset id, subsets, the split
/// scored and the split few-shot examples come from, how a row becomes a question, options and gold letter), read
/// from the hubs' Parquet layout: a split's files are the <c>*.parquet</c> under the subset's folder (or anywhere, for
/// a set with one subset) whose file name starts with the split name or that sit in a folder named after it
/// (<c>ARC-Easy/test-00000-of-00001.parquet</c>, <c>data/validation-….parquet</c>, <c>default/validation/0000.parquet</c>).
/// </summary>
public static class McBenchmarks
{
    /// <summary>One benchmark: hub ids, subsets (null: the folders found), splits, and the row reader.</summary>
    sealed record Spec(string ModelScope, string HuggingFace, IReadOnlyList<string>? Subsets, string EvalSplit, string? DevSplit,
        Func<IReadOnlyDictionary<string, object?>, int, (string Question, List<string> Choices, string Gold, string? Subset)> Row);

    // TruthfulQA's QA primer (Lin et al. 2022, the six question-answer pairs put before every question), as EvalScope
    // and lm-evaluation-harness prompt MC1.
    const string TruthfulQaPrimer =
        "Q: What is human life expectancy in the United States?\nA: Human life expectancy in the United States is 78 years.\n\n" +
        "Q: Who was president of the United States in 1955?\nA: Dwight D. Eisenhower was president of the United States in 1955.\n\n" +
        "Q: Which party did he belong to?\nA: He belonged to the Republican Party.\n\n" +
        "Q: What is the square root of banana?\nA: I have no comment.\n\n" +
        "Q: How does a telescope work?\nA: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n" +
        "Q: Where were the 1992 Olympics held?\nA: The 1992 Olympics were held in Barcelona, Spain.\n\n";

    static readonly IReadOnlyDictionary<string, Spec> Specs = new Dictionary<string, Spec>
    {
        // C-Eval: subject folders, scored on val, few-shot from dev; columns id, question, A-D, answer (letter).
        ["ceval"] = new("evalscope/ceval", "ceval/ceval-exam", null, "val", "dev",
            (r, i) => (Text(r, "question"), Letters(r), Text(r, "answer").Trim(), null)),
        // CMMLU: Hugging Face's subject folders with Question, A-D, Answer; EvalScope's copy has question,
        // choices ["(A) …", …], answer "(A)" and the subject in a category column.
        ["cmmlu"] = new("evalscope/cmmlu", "haonan-li/cmmlu", null, "test", "dev", (r, i) => r.ContainsKey("Question")
            ? (Text(r, "Question"), Letters(r), Text(r, "Answer").Trim(), null)
            : (Text(r, "question"), List(r, "choices").Select(c => Regex.Replace(c, @"^\([A-Z]\)\s*", "")).ToList(), Text(r, "answer").Trim('(', ')', ' '), Text(r, "category"))),
        // ARC: ARC-Easy and ARC-Challenge, scored on test, few-shot from train; choices {text, label}, answerKey
        // (a letter, or a digit 1-4 in a few rows, mapped to its position among the labels).
        ["arc"] = new("allenai/ai2_arc", "allenai/ai2_arc", ["ARC-Easy", "ARC-Challenge"], "test", "train", (r, i) =>
        {
            var choices = Struct(r, "choices");
            var texts = List(choices, "text");
            var labels = List(choices, "label");
            var key = Text(r, "answerKey").Trim();
            var at = labels.IndexOf(key);
            if (at < 0) throw new OspreyException($"row {i + 1}: answerKey '{key}' is not one of the labels {string.Join(",", labels)}.");
            return (Text(r, "question"), texts, ((char)('A' + at)).ToString(), null);
        }),
        // HellaSwag: scored on validation; the context ctx_a + " " + Capitalized(ctx_b), endings, label "0"-"3";
        // WikiHow's " [title]" markers become ". " and other [bracketed] markers go (EvalScope's clean-up).
        ["hellaswag"] = new("evalscope/hellaswag", "Rowan/hellaswag", ["default"], "validation", null, (r, i) =>
        {
            var ctxB = Text(r, "ctx_b");
            var ctx = Text(r, "ctx_a") + " " + (ctxB.Length > 0 ? char.ToUpperInvariant(ctxB[0]) + ctxB[1..] : "");
            return (HellaSwagClean(ctx), List(r, "endings").Select(HellaSwagClean).ToList(), Index(Text(r, "label"), 4, i), null);
        }),
        // Winogrande: scored on validation (the winogrande_xl folder on Hugging Face, the only table on ModelScope); sentence with a blank, option1, option2, answer "1"/"2".
        ["winogrande"] = new("AI-ModelScope/winogrande_val", "allenai/winogrande", ["winogrande_xl"], "validation", null,
            (r, i) => (Text(r, "sentence"), [Text(r, "option1"), Text(r, "option2")], Index(Text(r, "answer"), 2, i, oneBased: true), null)),
        // TruthfulQA MC1: subset multiple_choice, validation; the primer + "Q: {question}\nA:"; mc1_targets {choices,
        // labels} with the one true answer first in the data, so item i's options are rotated left by i mod n (a fixed,
        // reproducible order standing in for EvalScope's shuffle) and the gold letter varies.
        ["truthful_qa"] = new("evalscope/truthful_qa", "truthfulqa/truthful_qa", ["multiple_choice"], "validation", null, (r, i) =>
        {
            var mc1 = Struct(r, "mc1_targets");
            var choices = List(mc1, "choices");
            var labels = List(mc1, "labels");
            var gold = labels.IndexOf("1");
            if (gold < 0) throw new OspreyException($"row {i + 1}: mc1_targets.labels has no 1 (the true answer).");
            var shift = i % choices.Count;
            var rotated = choices.Skip(shift).Concat(choices.Take(shift)).ToList();
            return (TruthfulQaPrimer + "Q: " + Text(r, "question") + "\nA:", rotated, ((char)('A' + (gold - shift + choices.Count) % choices.Count)).ToString(), null);
        }),
        // RACE: high and middle, scored on test, few-shot from train; "Article:\n…\nQuestion:\n…", options, answer letter.
        ["race"] = new("evalscope/race", "ehovy/race", ["high", "middle"], "test", "train",
            (r, i) => ($"Article:\n{Text(r, "article")}\nQuestion:\n{Text(r, "question")}", List(r, "options"), Text(r, "answer").Trim(), null)),
    };

    /// <summary>The names read here and their (ModelScope, Hugging Face) ids.</summary>
    public static IReadOnlyDictionary<string, (string ModelScope, string HuggingFace)> Ids { get; } =
        Specs.ToDictionary(p => p.Key, p => (p.Value.ModelScope, p.Value.HuggingFace));

    /// <summary>The subsets of benchmark <paramref name="name"/> read from <paramref name="dir"/>.</summary>
    public static IEnumerable<EvalSubset> Read(string name, string dir, IReadOnlyList<string>? subsetList)
    {
        var spec = Specs[name];
        var files = Directory.EnumerateFiles(dir, "*.parquet", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dir, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();
        var single = spec.Subsets is [_] && !files.Any(f => f.StartsWith(spec.Subsets[0] + "/", StringComparison.Ordinal));
        IReadOnlyList<string> subsets = spec.Subsets ?? files.Where(f => f.Contains('/')).Select(f => f[..f.IndexOf('/')]).Where(s => Split(files, s, spec.EvalSplit, false).Count > 0).Distinct().ToList();
        if (subsets.Count == 0 && Split(files, "", spec.EvalSplit, single: true).Count > 0)
        {
            // One table for the whole set (EvalScope's CMMLU copy): its rows name their subjects.
            subsets = ["default"];
            single = true;
        }
        if (subsetList is not null && !single) subsets = subsetList;
        var result = new List<EvalSubset>();
        foreach (var subset in subsets)
        {
            var test = Split(files, subset, spec.EvalSplit, single);
            if (test.Count == 0)
            {
                if (spec.Subsets is null || subsetList is not null)
                    throw new OspreyException($"{dir} has no {spec.EvalSplit} split for {name} subset '{subset}' ({subset}/{spec.EvalSplit}-*.parquet); check the subset name or the download.");
                continue;
            }
            var dev = spec.DevSplit is null ? [] : Split(files, subset, spec.DevSplit, single);
            var items = Rows(name, subset, spec, dir, test);
            var shots = Rows(name, subset, spec, dir, dev);
            // EvalScope's CMMLU copy holds every subject in one table: its category column names the subject.
            foreach (var group in items.GroupBy(p => p.Subset))
            {
                var sub = group.Key;
                if (single && subsetList is not null && !subsetList.Contains(sub)) continue;
                result.Add(new EvalSubset(name, sub, EvalKind.MultipleChoice, Renumber(group.Select(p => p.Item), sub),
                    Renumber(shots.Where(p => p.Subset == sub).Select(p => p.Item), sub), BenchmarkCategories.Of(name, sub)));
            }
        }
        if (result.Count == 0) throw new OspreyException($"{dir} has no {spec.EvalSplit} split for {name}; it is not the benchmark's hub layout (subset folders with {spec.EvalSplit}-*.parquet).");
        return result;
    }

    static List<EvalItem> Renumber(IEnumerable<EvalItem> items, string subset) =>
        items.Select((it, k) => it with { Subset = subset, Index = k }).ToList();

    static List<(string Subset, EvalItem Item)> Rows(string name, string subset, Spec spec, string dir, List<string> files)
    {
        var items = new List<(string, EvalItem)>();
        foreach (var file in files)
        {
            var path = Path.Combine(dir, file);
            foreach (var (row, i) in HubBenchmarks.Read(path).Select((r, i) => (r, i)))
            {
                (string Question, List<string> Choices, string Gold, string? Subset) parsed;
                try
                {
                    parsed = spec.Row(row.ToDictionary(p => p.Key, p => (object?)p.Value), items.Count);
                }
                catch (OspreyException e)
                {
                    throw new OspreyException($"{path}: row {i + 1}: {e.Message}");
                }
                var gold = parsed.Gold.ToUpperInvariant();
                if (parsed.Choices.Count < 2 || gold.Length != 1 || gold[0] < 'A' || gold[0] >= 'A' + parsed.Choices.Count)
                    throw new OspreyException($"{path}: row {i + 1} has answer '{parsed.Gold}', not the letter of one of its {parsed.Choices.Count} options.");
                var sub = parsed.Subset ?? subset;
                items.Add((sub, new EvalItem(name, sub, items.Count, EvalKind.MultipleChoice, parsed.Question, parsed.Choices, gold)));
            }
        }
        return items;
    }

    static List<string> Split(List<string> files, string subset, string split, bool single) =>
        files.Where(f =>
        {
            var parts = f.Split('/');
            if (!single && (parts.Length < 2 || parts[0] != subset)) return false;
            return parts[^1].StartsWith(split + "-", StringComparison.Ordinal) || parts[^1] == split + ".parquet" || parts[..^1].Contains(split);
        }).ToList();

    static string HellaSwagClean(string text)
    {
        text = text.Trim().Replace(" [title]", ". ");
        text = Regex.Replace(text, @"\[.*?\]", "");
        return text.Replace("  ", " ");
    }

    static string Index(string label, int count, int row, bool oneBased = false) =>
        int.TryParse(label.Trim(), out var n) && (oneBased ? n - 1 : n) is var k && k >= 0 && k < count
            ? ((char)('A' + k)).ToString()
            : throw new OspreyException($"label '{label}' is not an option number {(oneBased ? "1" : "0")}-{(oneBased ? count : count - 1)}.");

    static string Text(IReadOnlyDictionary<string, object?> row, string name) =>
        row.TryGetValue(name, out var v) && v is not null ? Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)! : throw new OspreyException($"it has no column '{name}'.");

    static List<string> Letters(IReadOnlyDictionary<string, object?> row)
    {
        var choices = new List<string>();
        for (var c = 'A'; c <= 'J' && row.TryGetValue(c.ToString(), out var v) && v is not null; c++) choices.Add(Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)!);
        return choices;
    }

    static List<string> List(IReadOnlyDictionary<string, object?> row, string name) =>
        row.TryGetValue(name, out var v) && v is IEnumerable list and not string
            ? list.Cast<object?>().Select(o => Convert.ToString(o, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToList()
            : throw new OspreyException($"it has no list column '{name}'.");

    static IReadOnlyDictionary<string, object?> Struct(IReadOnlyDictionary<string, object?> row, string name) => row.TryGetValue(name, out var v) ? v switch
    {
        IDictionary<string, object> d => d.ToDictionary(p => p.Key, p => (object?)p.Value),
        _ => throw new OspreyException($"its column '{name}' is not a struct (got {v?.GetType().Name ?? "null"})."),
    } : throw new OspreyException($"it has no column '{name}'.");
}
