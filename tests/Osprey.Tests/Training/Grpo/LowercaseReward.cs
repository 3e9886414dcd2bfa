using Osprey.Training.Grpo;

namespace Osprey.Tests.Training.Grpo;

/// <summary>A reward plugin for the GRPO tests (loaded from this assembly with --external_plugins): the share of lowercase ASCII letters in the completion.</summary>
public sealed class LowercaseReward : IRewardFunction
{
    /// <inheritdoc />
    public string Name => "lowercase";

    /// <inheritdoc />
    public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch) =>
        batch.Select(c => c.Completion.Length == 0 ? 0.0 : c.Completion.Count(ch => ch is >= 'a' and <= 'z') / (double)c.Completion.Length).ToList();
}
