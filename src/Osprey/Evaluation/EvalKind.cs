namespace Osprey.Evaluation;

/// <summary>What an item asks for, which decides how it is prompted and scored.</summary>
public enum EvalKind
{
    /// <summary>Pick one lettered option (general_mcq, MMLU-style): accuracy.</summary>
    MultipleChoice,

    /// <summary>An open answer compared with a reference text (general_qa): BLEU and ROUGE.</summary>
    OpenQa,

    /// <summary>A worked math problem whose final number must equal the gold one (GSM8K): exact match.</summary>
    Math,

    /// <summary>A short answer compared exactly after extraction (BBH's letters and free-form targets): exact match.</summary>
    ShortAnswer,

    /// <summary>A prompt with verifiable instructions (IFEval): prompt- and instruction-level accuracy, strict and loose.</summary>
    InstructionFollowing,
}
