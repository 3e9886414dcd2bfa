namespace Osprey.Training.Grpo;

/// <summary>
/// A GRPO reward: scores a batch of completions, one number each (higher is better). Implement it in any .NET assembly
/// with a public parameterless constructor and pass the assembly with <c>--external_plugins my.dll</c>; name it in
/// <c>--reward_funcs</c> by <see cref="Name"/>. Called from one thread at a time.
/// </summary>
/// <example>
/// <code>
/// public sealed class ShortAnswers : IRewardFunction
/// {
///     public string Name => "short";
///     public IReadOnlyList&lt;double&gt; Score(IReadOnlyList&lt;RewardInput&gt; batch) =>
///         batch.Select(c => c.Completion.Length &lt;= 20 ? 1.0 : 0.0).ToList();
/// }
/// </code>
/// </example>
public interface IRewardFunction
{
    /// <summary>The name <c>--reward_funcs</c> uses; it also names the reward in logging.jsonl (<c>rewards/NAME/mean</c>).</summary>
    string Name { get; }

    /// <summary>One reward per completion, in order; <see cref="double.NaN"/> means "does not apply" (counted as 0 in the sum, left out of the mean).</summary>
    IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch);
}
