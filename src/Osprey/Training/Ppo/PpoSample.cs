using Osprey.Training.Grpo;

namespace Osprey.Training.Ppo;

/// <summary>
/// One completion of a PPO rollout batch with what the updates need, per completion token: the rollout policy's
/// log-probs, the value model's values, the whitened advantages and the returns; and its sequence score.
/// </summary>
internal sealed class PpoSample
{
    public required Rollout Rollout { get; init; }
    public required double Score { get; init; }
    public required float[] Logps { get; init; }
    public required float[] Values { get; init; }
    public required float[] Advantages { get; init; }
    public required float[] Returns { get; init; }
}
