namespace Osprey.Evaluation;

/// <summary>How a multiple-choice item is answered.</summary>
public enum McMethod
{
    /// <summary>The option whose continuation has the highest log-likelihood (lm-evaluation-harness).</summary>
    LogLikelihood,

    /// <summary>The model writes an answer and a letter is extracted from it (EvalScope).</summary>
    Generation,
}
