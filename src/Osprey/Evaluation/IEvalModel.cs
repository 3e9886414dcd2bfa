namespace Osprey.Evaluation;

/// <summary>What an evaluation asks of a model: replies to prompts and, where the model allows, option log-likelihoods.</summary>
public interface IEvalModel : IDisposable
{
    /// <summary>A name for the reports.</summary>
    string Name { get; }

    /// <summary>True when <see cref="LogLikelihoods"/> works (a local model; a chat server gives no logits).</summary>
    bool CanScore { get; }

    /// <summary>Prompts handed to <see cref="GenerateAsync"/> at once.</summary>
    int Concurrency { get; }

    /// <summary>The log-likelihood of each continuation after <paramref name="context"/>.</summary>
    double[] LogLikelihoods(string context, IReadOnlyList<string> continuations);

    /// <summary>The replies to <paramref name="prompts"/>, in order.</summary>
    Task<IReadOnlyList<string>> GenerateAsync(IReadOnlyList<EvalPrompt> prompts, CancellationToken cancel);
}
