using System.Text.RegularExpressions;

namespace Osprey.Evaluation;

/// <summary>
/// BIG-Bench Hard by name, as EvalScope defines it: 27 tasks (17 multiple choice with targets such as <c>(A)</c>, 10
/// free form such as <c>True</c>, <c>24</c> or <c>valid</c>), each a folder with <c>test-*.parquet</c> of input and
/// target (ModelScope <c>evalscope/bbh</c>, Hugging Face <c>lukaemon/bbh</c>). The prompt is EvalScope's
/// "Q: … A: Let's think step by step … So the answer is [ANSWER]"; the answer is what follows the last "So the answer
/// is", on its line, without a final period — for multiple choice the letter in parentheses (or a lone capital), for
/// free form the text (the inside of **bold** when marked) — and must equal the target without its parentheses.
/// Zero-shot only: EvalScope's three-shot chain-of-thought exemplars are its own files and are not shipped here.
/// </summary>
public static class Bbh
{
    /// <summary>The tasks whose targets are option letters.</summary>
    public static IReadOnlyList<string> MultipleChoiceTasks { get; } =
    [
        "temporal_sequences", "disambiguation_qa", "date_understanding", "tracking_shuffled_objects_three_objects", "penguins_in_a_table",
        "geometric_shapes", "snarks", "ruin_names", "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_five_objects",
        "logical_deduction_three_objects", "hyperbaton", "logical_deduction_five_objects", "logical_deduction_seven_objects",
        "movie_recommendation", "salient_translation_error_detection", "reasoning_about_colored_objects",
    ];

    /// <summary>The tasks whose targets are free text.</summary>
    public static IReadOnlyList<string> FreeFormTasks { get; } =
    [
        "multistep_arithmetic_two", "navigate", "dyck_languages", "word_sorting", "sports_understanding", "boolean_expressions",
        "object_counting", "formal_fallacies", "causal_judgement", "web_of_lies",
    ];

    /// <summary>The tasks of <paramref name="dir"/> (every task folder with a test split, unless <paramref name="subsets"/> names them).</summary>
    public static IEnumerable<EvalSubset> Read(string dataset, string dir, IReadOnlyList<string>? subsets)
    {
        var names = subsets ?? MultipleChoiceTasks.Concat(FreeFormTasks).Where(t => Test(dir, t).Count > 0).ToList();
        if (names.Count == 0) throw new OspreyException($"{dir} has no task folders with test-*.parquet (e.g. boolean_expressions/test-00000-of-00001.parquet); it is not bbh's hub layout.");
        foreach (var task in names)
        {
            var files = Test(dir, task);
            if (files.Count == 0) throw new OspreyException($"{dir} has no {task}/test-*.parquet; check the task name '{task}'.");
            var items = new List<EvalItem>();
            foreach (var file in files)
                foreach (var (row, i) in HubBenchmarks.Read(file).Select((r, i) => (r, i)))
                {
                    string Field(string name) => row.TryGetValue(name, out var v) && v is string s ? s : throw new OspreyException($"{file}: row {i + 1} has no text column '{name}'.");
                    items.Add(new EvalItem(dataset, task, items.Count, EvalKind.ShortAnswer, Field("input"), [], Field("target").Replace("(", "").Replace(")", "").Trim()));
                }
            yield return new EvalSubset(dataset, task, EvalKind.ShortAnswer, items, [], MultipleChoiceTasks.Contains(task) ? "multiple_choice" : "free_form");
        }
    }

    static List<string> Test(string dir, string task)
    {
        var folder = Path.Combine(dir, task);
        return Directory.Exists(folder) ? Directory.EnumerateFiles(folder, "test-*.parquet").Order(StringComparer.Ordinal).ToList() : [];
    }

    /// <summary>EvalScope's zero-shot BBH prompt.</summary>
    public static EvalPrompt Prompt(EvalItem item) => new(null,
        $"Q: {item.Question}\nA: Let's think step by step. Put your final answer in the format of \"So the answer is [ANSWER]\" (without quotes and markdown) where [ANSWER] is the answer to the problem.\n");

    /// <summary>The answer in <paramref name="reply"/> for task <paramref name="task"/> (see the type's summary).</summary>
    public static string Extract(string reply, string task)
    {
        var text = reply.Trim();
        var at = text.LastIndexOf("So the answer is ", StringComparison.Ordinal);
        if (at >= 0) text = text[(at + "So the answer is ".Length)..].Trim();
        text = text.Split('\n')[0].Trim();
        if (text.EndsWith('.')) text = text[..^1].Trim();
        if (MultipleChoiceTasks.Contains(task))
        {
            var m = Regex.Match(text, @"\(([A-Z])\)");
            if (m.Success) return m.Groups[1].Value;
            m = Regex.Match(text, @"\b([A-Z])\b");
            return m.Success ? m.Groups[1].Value : text;
        }
        var bold = Regex.Match(text, @"\*\*(.*?)\*\*");
        return bold.Success ? bold.Groups[1].Value.Trim() : text;
    }
}
