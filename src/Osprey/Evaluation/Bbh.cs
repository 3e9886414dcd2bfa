using System.Text.RegularExpressions;

namespace Osprey.Evaluation;

/// <summary>
/// BIG-Bench Hard by name, as EvalScope defines it: 27 tasks (17 multiple choice with targets such as <c>(A)</c>, 10
/// free form such as <c>True</c>, <c>24</c> or <c>valid</c>), each a folder with <c>test-*.parquet</c> of input and
/// target (ModelScope <c>evalscope/bbh</c>, Hugging Face <c>lukaemon/bbh</c>). The prompt is EvalScope's
/// "Q: … A: Let's think step by step … So the answer is [ANSWER]"; the answer is what follows the last "So the answer
/// is", on its line, without a final period — for multiple choice the letter in parentheses (or a lone capital), for
/// free form the text (the inside of **bold** when marked) — and must equal the target without its parentheses.
/// Few-shot (<c>--eval_few_shot</c> or few_shot_num above 0; any such count means the task's three exemplars, as
/// EvalScope uses 3 or 0) puts the task's chain-of-thought exemplars before the question, in EvalScope's few-shot
/// template: <c>Task description: {exemplars}\n\nQ: …</c>. The exemplars are the BIG-Bench Hard authors'
/// <c>cot-prompts/{task}.txt</c> (a description line, then three worked Q/A pairs), which EvalScope ships inside its
/// package and the hub datasets do not hold; they are third-party data, so Osprey does not ship them either: they are
/// read from <c>--dataset_args '{"bbh": {"cot_prompts_dir": DIR}}'</c>, else from the dataset folder
/// (<c>{task}.txt</c>, <c>cot-prompts/{task}.txt</c> or <c>cot_prompts/{task}.txt</c>).
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
    public static IEnumerable<EvalSubset> Read(string dataset, string dir, IReadOnlyList<string>? subsets, bool fewShot = false, string? cotPromptsDir = null)
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
            // The exemplars travel as the subset's one dev item, so the runner's few-shot selection picks them up.
            IReadOnlyList<EvalItem> dev = fewShot ? [new EvalItem(dataset, task, 0, EvalKind.ShortAnswer, Exemplars(dir, task, cotPromptsDir), [], "")] : [];
            yield return new EvalSubset(dataset, task, EvalKind.ShortAnswer, items, dev, MultipleChoiceTasks.Contains(task) ? "multiple_choice" : "free_form");
        }
    }

    static List<string> Test(string dir, string task)
    {
        var folder = Path.Combine(dir, task);
        return Directory.Exists(folder) ? Directory.EnumerateFiles(folder, "test-*.parquet").Order(StringComparer.Ordinal).ToList() : [];
    }

    static string Exemplars(string dir, string task, string? cotPromptsDir)
    {
        var candidates = new[] { cotPromptsDir, dir }.OfType<string>()
            .SelectMany(d => new[] { Path.Combine(d, task + ".txt"), Path.Combine(d, "cot-prompts", task + ".txt"), Path.Combine(d, "cot_prompts", task + ".txt") })
            .ToList();
        var path = candidates.FirstOrDefault(File.Exists) ?? throw new OspreyException(
            $"bbh few-shot needs the chain-of-thought exemplars of '{task}' ({task}.txt from the BIG-Bench Hard repository's cot-prompts folder), which are not in the dataset; " +
            $"put them in a folder and pass --dataset_args '{{\"bbh\": {{\"cot_prompts_dir\": \"DIR\"}}}}', or use --eval_few_shot 0. Looked for: {string.Join(", ", candidates)}.");
        // The original files open with a canary line of dashes before the task description; it is not part of the prompt.
        var lines = File.ReadAllLines(path).SkipWhile(l => l.Trim().Length == 0 || l.TrimStart().StartsWith("-----", StringComparison.Ordinal));
        var text = string.Join("\n", lines).Trim();
        if (text.Length == 0) throw new OspreyException($"{path} is empty; it should hold the task description and three worked Q/A exemplars.");
        return text;
    }

    const string Instruction = "A: Let's think step by step. Put your final answer in the format of \"So the answer is [ANSWER]\" (without quotes and markdown) where [ANSWER] is the answer to the problem.\n";

    /// <summary>EvalScope's BBH prompt: zero-shot, or with <paramref name="shots"/> (the task's exemplars) in its few-shot template.</summary>
    public static EvalPrompt Prompt(EvalItem item, IReadOnlyList<EvalItem>? shots = null) => new(null, shots is [var exemplars, ..]
        ? $"Task description: {exemplars.Question}\n\nQ: {item.Question}\n{Instruction}"
        : $"Q: {item.Question}\n{Instruction}");

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
