namespace Osprey.Evaluation;

/// <summary>
/// The prompts of each scoring method, written after the reference harnesses' documented formats:
/// lm-evaluation-harness's MMLU prompt for log-likelihood multiple choice (a description line, then
/// <c>question\nA. …\nB. …\nAnswer:</c> with continuations <c>" A"</c>, <c>" B"</c>, …; C-Eval and CMMLU in their
/// Chinese prompts), EvalScope's prompts for
/// multiple choice by generation (<c>ANSWER: [LETTER]</c>; general_mcq uses its Chinese template) and for GSM8K.
/// Few-shot examples come from the subset's dev items, first ones first.
/// </summary>
public static class EvalPrompts
{
    /// <summary>
    /// The shared context and the per-option continuations for log-likelihood scoring: C-Eval and CMMLU in their
    /// Chinese wording (<see cref="CevalLogLikelihood"/>, <see cref="CmmluLogLikelihood"/>), every other set in
    /// lm-evaluation-harness's MMLU format.
    /// </summary>
    public static (string Context, IReadOnlyList<string> Continuations) LogLikelihood(EvalItem item, IReadOnlyList<EvalItem> shots)
    {
        if (item.Dataset == "ceval") return CevalLogLikelihood(item, shots);
        if (item.Dataset == "cmmlu") return CmmluLogLikelihood(item, shots);
        var subject = item.Subset.Replace('_', ' ');
        var text = $"The following are multiple choice questions (with answers) about {subject}.\n\n";
        foreach (var shot in shots) text += McBlock(shot) + " " + shot.Gold + "\n\n";
        return (text + McBlock(item), item.Letters.Select(l => " " + l).ToList());
    }

    /// <summary>
    /// C-Eval as EvalScope scores it by log-likelihood (its multiple-choice output type): the line
    /// <c>以下是中国关于{科目}考试的单项选择题，请选出其中的正确答案。</c>, then the few-shot examples
    /// (<c>问题：…\nA. …\n答案: X\n\n</c>, joined by a newline, the whole block stripped of surrounding whitespace
    /// as EvalScope strips it, so the last example's answer runs straight into the next <c>问题：</c>), then the
    /// question ending <c>答案: </c>; the continuations are the letters (the context's trailing space moves into
    /// them when tokenised).
    /// </summary>
    public static (string Context, IReadOnlyList<string> Continuations) CevalLogLikelihood(EvalItem item, IReadOnlyList<EvalItem> shots)
    {
        string Example(EvalItem q, bool answer) =>
            "问题：" + q.Question + string.Concat(q.Choices.Select((c, i) => $"\n{q.Letters[i]}. {c}")) + (answer ? "\n答案: " + q.Gold + "\n\n" : "\n答案: ");
        var context = shots.Count > 0 ? string.Join("\n", shots.Select(s => Example(s, true))) + "\n" : "";
        var text = $"以下是中国关于{ChineseSubjects.Of("ceval", item.Subset)}考试的单项选择题，请选出其中的正确答案。\n" + context.Trim() + Example(item, false);
        return (text, item.Letters);
    }

    /// <summary>
    /// CMMLU in its authors' direct-answer prompt (EvalScope's own CMMLU log-likelihood prompt repeats the question
    /// and ends in English, so the paper's wording is used): <c>以下是关于{科目}的单项选择题，请直接给出正确答案的选项。\n\n</c>,
    /// then each example as <c>题目：…\nA. …\n答案是：X\n\n</c> and the question ending <c>答案是：</c>; the
    /// continuations are the letters.
    /// </summary>
    public static (string Context, IReadOnlyList<string> Continuations) CmmluLogLikelihood(EvalItem item, IReadOnlyList<EvalItem> shots)
    {
        string Example(EvalItem q) => "题目：" + q.Question + string.Concat(q.Choices.Select((c, i) => $"\n{q.Letters[i]}. {c}")) + "\n答案是：";
        var text = $"以下是关于{ChineseSubjects.Of("cmmlu", item.Subset)}的单项选择题，请直接给出正确答案的选项。\n\n"
            + string.Concat(shots.Select(s => Example(s) + s.Gold + "\n\n")) + Example(item);
        return (text, item.Letters);
    }

    static string McBlock(EvalItem item) =>
        item.Question.Trim() + "\n" + string.Concat(item.Choices.Select((c, i) => $"{item.Letters[i]}. {c}\n")) + "Answer:";

    /// <summary>The prompt for multiple choice by generation, in EvalScope's wording for the set.</summary>
    public static EvalPrompt McGeneration(EvalItem item, IReadOnlyList<EvalItem> shots)
    {
        var letters = string.Join(",", item.Letters);
        string Block(EvalItem q, bool chinese) => chinese
            ? $"问题:{q.Question.Trim()}\n选项:\n" + string.Join("\n", q.Choices.Select((c, i) => $"{q.Letters[i]}) {c}"))
            : q.Question.Trim() + "\n\n" + string.Join("\n", q.Choices.Select((c, i) => $"{q.Letters[i]}) {c}"));
        var zh = item.Dataset is "general_mcq" or "ceval" or "cmmlu";
        var examples = string.Concat(shots.Select(s => Block(s, zh) + (zh ? $"\n答案:{s.Gold}\n\n" : $"\nANSWER: {s.Gold}\n\n")));
        var text = zh
            ? $"回答下面的单项选择题,请选出其中的正确答案。你的回答的全部内容应该是这样的格式:\"答案:[LETTER]\"(不带引号),其中 [LETTER] 是 {letters} 中的一个。\n\n{examples}{Block(item, true)}"
            : $"Answer the following multiple choice question. The entire content of your response should be of the following format: 'ANSWER: [LETTER]' (without quotes) where [LETTER] is one of {letters}.\n\n{examples}{Block(item, false)}";
        return new EvalPrompt(null, text);
    }

    /// <summary>The prompt for a worked math problem (EvalScope's GSM8K wording), shots with their solutions.</summary>
    public static EvalPrompt Math(EvalItem item, IReadOnlyList<EvalItem> shots)
    {
        var examples = string.Concat(shots.Select(s => $"{s.Question.Trim()}\n\n{s.Solution}\nANSWER: {s.Gold}\n\n"));
        return new EvalPrompt(null,
            "Solve the following math problem step by step. The last line of your response should be of the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer to the problem.\n\n" +
            examples + item.Question.Trim() +
            "\n\nRemember to put your answer on its own line at the end in the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer to the problem, and you do not need to use a \\boxed command.");
    }

    /// <summary>An open question: the query itself, with its row's system message.</summary>
    public static EvalPrompt OpenQa(EvalItem item) => new(item.System, item.Question);
}
