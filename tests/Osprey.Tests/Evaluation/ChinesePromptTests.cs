using Osprey.Evaluation;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// The Chinese log-likelihood prompts, rendered and compared with the documented wording written out by hand:
/// C-Eval's as EvalScope's C-Eval adapter builds it for its multiple-choice (log-likelihood) output type (header
/// "以下是中国关于{科目}考试的单项选择题，请选出其中的正确答案。", examples "问题：…\n答案: X\n\n" joined and stripped,
/// question ending "答案: "), CMMLU's as its authors' direct-answer prompt ("以下是关于{科目}的单项选择题，请直接给出正确答案的选项。",
/// "题目：…\n答案是："); other sets keep lm-evaluation-harness's MMLU format.
/// </summary>
public sealed class ChinesePromptTests
{
    static EvalItem Item(string set, string subset, string q, string gold = "A") => new(set, subset, 0, EvalKind.MultipleChoice, q, ["甲", "乙", "丙", "丁"], gold);

    [Fact]
    public void Ceval_ZeroShot_IsEvalScopesWordingWithTheChineseSubjectName()
    {
        var (context, continuations) = EvalPrompts.LogLikelihood(Item("ceval", "computer_network", "下列哪个是协议？"), []);
        Assert.Equal("以下是中国关于计算机网络考试的单项选择题，请选出其中的正确答案。\n问题：下列哪个是协议？\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案: ", context);
        Assert.Equal(["A", "B", "C", "D"], continuations);
    }

    [Fact]
    public void Ceval_FewShot_JoinsAndStripsTheExamplesAsEvalScopeDoes()
    {
        var shots = new[] { Item("ceval", "logic", "例一", "B"), Item("ceval", "logic", "例二", "D") };
        var (context, _) = EvalPrompts.LogLikelihood(Item("ceval", "logic", "问"), shots);
        Assert.Equal(
            "以下是中国关于逻辑学考试的单项选择题，请选出其中的正确答案。\n" +
            "问题：例一\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案: B\n\n\n" +
            "问题：例二\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案: D" +
            "问题：问\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案: ", context);
    }

    [Fact]
    public void Cmmlu_IsTheAuthorsDirectAnswerPrompt()
    {
        var shots = new[] { Item("cmmlu", "anatomy", "例一", "C") };
        var (context, continuations) = EvalPrompts.LogLikelihood(Item("cmmlu", "anatomy", "问"), shots);
        Assert.Equal(
            "以下是关于解剖学的单项选择题，请直接给出正确答案的选项。\n\n" +
            "题目：例一\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案是：C\n\n" +
            "题目：问\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案是：", context);
        Assert.Equal(["A", "B", "C", "D"], continuations);
    }

    [Fact]
    public void UnknownSubject_KeepsItsFolderName_OtherSetsKeepTheMmluFormat()
    {
        Assert.StartsWith("以下是关于made_up的单项选择题", EvalPrompts.LogLikelihood(Item("cmmlu", "made_up", "问"), []).Context, StringComparison.Ordinal);
        var (context, continuations) = EvalPrompts.LogLikelihood(Item("mmlu", "high_school_physics", "Q?"), []);
        Assert.Equal("The following are multiple choice questions (with answers) about high school physics.\n\nQ?\nA. 甲\nB. 乙\nC. 丙\nD. 丁\nAnswer:", context);
        Assert.Equal([" A", " B", " C", " D"], continuations);
    }
}
