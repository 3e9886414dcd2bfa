namespace Osprey.Evaluation;

/// <summary>
/// One question of a subset: its text, its options (multiple choice only, in letter order), the gold answer (a
/// letter, a reference text or a number) and an optional system message (general_qa rows may carry one) and, for worked problems, the solution shown in few-shot examples; an IFEval prompt carries its instructions.
/// </summary>
public sealed record EvalItem(string Dataset, string Subset, int Index, EvalKind Kind, string Question, IReadOnlyList<string> Choices, string Gold, string? System = null, string? Solution = null, IReadOnlyList<IfEvalInstruction>? Instructions = null)
{
    /// <summary>A key unique within a run: dataset/subset/index (how resumed records are matched).</summary>
    public string Key => $"{Dataset}/{Subset}/{Index}";

    /// <summary>The letters of the options: A, B, C, ...</summary>
    public IReadOnlyList<string> Letters => Choices.Select((_, i) => ((char)('A' + i)).ToString()).ToList();
}
