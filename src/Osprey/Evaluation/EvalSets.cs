using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Evaluation;

/// <summary>
/// Reads the sets named by <c>--eval_dataset</c> from the folders <c>--dataset_args</c> gives, in EvalScope's
/// layouts: general_mcq (<c>{subset}_val.csv</c>/<c>.jsonl</c> to score, optional <c>{subset}_dev.*</c> for few-shot;
/// columns id, question, A, B, … (up to J), answer), general_qa (<c>{subset}.jsonl</c> rows with query and response,
/// optional system) and gsm8k (<c>test.jsonl</c>, few-shot from <c>train.jsonl</c>; question and answer ending in
/// <c>#### N</c>). Benchmarks named without a folder (mmlu, gsm8k) come from the hubs (<see cref="HubBenchmarks"/>).
/// </summary>
public static class EvalSets
{
    /// <summary>The set names this reader knows.</summary>
    public static IReadOnlyList<string> Names { get; } = ["general_mcq", "general_qa", "gsm8k"];

    /// <summary>Every subset of every set in <paramref name="options"/>, items cut to <c>--eval_limit</c>.</summary>
    public static IReadOnlyList<EvalSubset> Load(EvalOptions options, TextWriter? log = null)
    {
        var subsets = new List<EvalSubset>();
        foreach (var name in options.Datasets)
        {
            var args = options.ArgsFor(name);
            var dir = args["local_path"]?.GetValue<string>();
            if (!Names.Contains(name) && !HubBenchmarks.Ids.ContainsKey(name))
                throw new OspreyException($"--eval_dataset {name} is not known here; use one of {string.Join(", ", Names.Concat(HubBenchmarks.Ids.Keys).Distinct())}.");
            if (dir is null && !HubBenchmarks.Ids.ContainsKey(name))
                throw new OspreyException($"--eval_dataset {name} needs its folder: --dataset_args '{{\"{name}\": {{\"local_path\": \"DIR\"}}}}'.");
            dir ??= HubBenchmarks.Resolve(name, options.Model.UseHf, log);
            if (!Directory.Exists(dir)) throw new OspreyException($"--dataset_args {name}.local_path {dir} is not a folder; give the folder holding the set's files.");
            var listed = args["subset_list"] is JsonArray list ? list.Select(n => n!.GetValue<string>()).ToList() : null;
            IEnumerable<EvalSubset> found = name switch
            {
                "general_mcq" => (listed ?? Discover(dir, "_val")).Select(s => Mcq(name, dir, s)),
                "general_qa" => (listed ?? Discover(dir, "")).Select(s => Qa(name, dir, s)),
                "mmlu" => HubBenchmarks.Mmlu(name, dir, listed),
                "bbh" => Bbh.Read(name, dir, listed, FewShotFor(options, name) > 0, args["cot_prompts_dir"]?.GetValue<string>()),
                "ifeval" => [IfEval.Read(name, dir)],
                _ when McBenchmarks.Ids.ContainsKey(name) => McBenchmarks.Read(name, dir, listed),
                _ when HubBenchmarks.IsHubLayout(dir) => [HubBenchmarks.Gsm8k(name, dir)],
                _ => [Gsm8k(name, dir)],
            };
            foreach (var s in found)
                subsets.Add(options.Limit is int n ? s with { Items = s.Items.Take(n).ToList() } : s);
        }
        return subsets;
    }

    /// <summary>The few-shot count for <paramref name="dataset"/>: its dataset_args few_shot_num, else --eval_few_shot, else 0.</summary>
    public static int FewShotFor(EvalOptions options, string dataset) =>
        options.ArgsFor(dataset)["few_shot_num"]?.GetValue<int>() ?? options.FewShot ?? 0;

    static List<string> Discover(string dir, string suffix)
    {
        var names = Directory.EnumerateFiles(dir)
            .Select(Path.GetFileName)
            .Where(f => f!.EndsWith(suffix + ".csv", StringComparison.Ordinal) || f.EndsWith(suffix + ".jsonl", StringComparison.Ordinal))
            .Select(f => Path.GetFileNameWithoutExtension(f!)[..^suffix.Length])
            .Where(s => s.Length > 0)
            .Distinct().Order(StringComparer.Ordinal).ToList();
        if (names.Count == 0) throw new OspreyException($"{dir} has no {(suffix.Length == 0 ? "{subset}.jsonl" : "{subset}_val.csv or {subset}_val.jsonl")} files; add them or list subsets with subset_list.");
        return names;
    }

    static string? Find(string dir, string stem) =>
        new[] { ".csv", ".jsonl" }.Select(e => Path.Combine(dir, stem + e)).FirstOrDefault(File.Exists);

    static EvalSubset Mcq(string dataset, string dir, string subset)
    {
        var val = Find(dir, subset + "_val") ?? throw new OspreyException($"{dir} has no {subset}_val.csv or {subset}_val.jsonl for subset '{subset}'; add the file or fix subset_list.");
        var dev = Find(dir, subset + "_dev");
        return new EvalSubset(dataset, subset, EvalKind.MultipleChoice, McqRows(dataset, subset, val), dev is null ? [] : McqRows(dataset, subset, dev), subset);
    }

    static List<EvalItem> McqRows(string dataset, string subset, string path)
    {
        var items = new List<EvalItem>();
        foreach (var (line, row) in Rows(path))
        {
            string Field(string name) => row.TryGetValue(name, out var v) && v is not null ? v : throw new OspreyException($"{path}:{line}: the row has no '{name}'; general_mcq rows need question, A, B, … and answer.");
            var choices = new List<string>();
            for (var c = 'A'; c <= 'J' && row.TryGetValue(c.ToString(), out var option) && option is not null && option.Length > 0; c++) choices.Add(option);
            if (choices.Count < 2) throw new OspreyException($"{path}:{line}: the row has {choices.Count} options; general_mcq needs at least columns A and B.");
            var answer = Field("answer").Trim().ToUpperInvariant();
            if (answer.Length != 1 || answer[0] < 'A' || answer[0] >= 'A' + choices.Count)
                throw new OspreyException($"{path}:{line}: answer '{answer}' is not one of the option letters A-{(char)('A' + choices.Count - 1)}; fix the answer field.");
            items.Add(new EvalItem(dataset, subset, items.Count, EvalKind.MultipleChoice, Field("question"), choices, answer));
        }
        return items;
    }

    static EvalSubset Qa(string dataset, string dir, string subset)
    {
        var path = Path.Combine(dir, subset + ".jsonl");
        if (!File.Exists(path)) throw new OspreyException($"{dir} has no {subset}.jsonl for subset '{subset}'; add the file or fix subset_list.");
        var items = new List<EvalItem>();
        foreach (var (line, row) in Rows(path))
        {
            var query = row.GetValueOrDefault("query") ?? row.GetValueOrDefault("question") ?? throw new OspreyException($"{path}:{line}: the row has no 'query'; general_qa rows are {{\"query\": ..., \"response\": ...}}.");
            var response = row.GetValueOrDefault("response") ?? row.GetValueOrDefault("answer") ?? throw new OspreyException($"{path}:{line}: the row has no 'response'; general_qa rows are {{\"query\": ..., \"response\": ...}}.");
            items.Add(new EvalItem(dataset, subset, items.Count, EvalKind.OpenQa, query, [], response, row.GetValueOrDefault("system")));
        }
        return new EvalSubset(dataset, subset, EvalKind.OpenQa, items, [], subset);
    }

    static EvalSubset Gsm8k(string dataset, string dir)
    {
        var test = Path.Combine(dir, "test.jsonl");
        if (!File.Exists(test)) throw new OspreyException($"{dir} has no test.jsonl; gsm8k's folder holds test.jsonl (and train.jsonl for few-shot) with question and answer fields.");
        var train = Path.Combine(dir, "train.jsonl");
        return new EvalSubset(dataset, "main", EvalKind.Math, MathRows(dataset, test), File.Exists(train) ? MathRows(dataset, train) : [], "math");
    }

    static List<EvalItem> MathRows(string dataset, string path)
    {
        var items = new List<EvalItem>();
        foreach (var (line, row) in Rows(path))
        {
            var q = row.GetValueOrDefault("question") ?? throw new OspreyException($"{path}:{line}: the row has no 'question'.");
            var a = row.GetValueOrDefault("answer") ?? throw new OspreyException($"{path}:{line}: the row has no 'answer'.");
            var hash = a.LastIndexOf("####", StringComparison.Ordinal);
            if (hash < 0) throw new OspreyException($"{path}:{line}: the answer does not end with '#### N' (GSM8K's final-number line); add it.");
            items.Add(new EvalItem(dataset, "main", items.Count, EvalKind.Math, q, [], AnswerExtraction.NormalizeNumber(a[(hash + 4)..].Trim()), null, a[..hash].Trim()));
        }
        return items;
    }

    static IEnumerable<(int Line, IReadOnlyDictionary<string, string?> Fields)> Rows(string path)
    {
        if (path.EndsWith(".csv", StringComparison.Ordinal))
        {
            foreach (var (line, row) in CsvRecords.Read(path)) yield return (line, row.ToDictionary(p => p.Key, p => (string?)p.Value));
            yield break;
        }
        var n = 0;
        foreach (var text in File.ReadLines(path))
        {
            n++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            JsonObject obj;
            try
            {
                obj = JsonNode.Parse(text) as JsonObject ?? throw new OspreyException($"{path}:{n}: the line is not a JSON object; each line holds one {{...}} row.");
            }
            catch (JsonException e)
            {
                throw new OspreyException($"{path}:{n}: the line is not valid JSON ({e.Message}); fix or remove it.");
            }
            yield return (n, obj.ToDictionary(p => p.Key, p => p.Value is JsonValue v && v.TryGetValue<string>(out var s) ? s : p.Value?.ToJsonString()));
        }
    }
}
