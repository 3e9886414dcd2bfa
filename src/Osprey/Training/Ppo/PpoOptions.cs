using Osprey.Options;

namespace Osprey.Training.Ppo;

/// <summary>
/// The PPO flags of <c>osprey rlhf --rlhf_type ppo</c>, with TRL's PPOConfig / ms-swift's names and defaults: the KL
/// penalty folded into per-token rewards, GAE, the clipped policy and value losses, and how often each rollout batch is
/// reused. Rollout length and sampling come from the GRPO flags (<c>--max_completion_length</c>, <c>--temperature</c>,
/// <c>--top_p</c>, <c>--top_k</c>), the reward from <c>--reward_model</c> and/or <c>--reward_funcs</c>.
/// </summary>
public sealed record PpoOptions
{
    /// <summary>Passes over each rollout batch.</summary>
    [Option("num_ppo_epochs", "PPO: passes over each rollout batch.")]
    public int NumPpoEpochs { get; init; } = 4;

    /// <summary>Optimizer steps per pass; the rollout batch is per_device_train_batch_size x gradient_accumulation_steps x this.</summary>
    [Option("num_mini_batches", "PPO: mini-batches (optimizer steps) per pass over a rollout batch.")]
    public int NumMiniBatches { get; init; } = 1;

    /// <summary>Whiten the per-token rewards (without shifting their mean) before GAE.</summary>
    [Option("whiten_rewards", "PPO: whiten the per-token rewards before GAE.")]
    public bool WhitenRewards { get; init; }

    /// <summary>Weight of the per-token KL(policy‖reference) penalty in the rewards.</summary>
    [Option("kl_coef", "PPO: weight of the per-token KL penalty (logp - ref_logp) subtracted from the rewards.")]
    public double KlCoef { get; init; } = 0.05;

    /// <summary>Clip range of the policy ratio.</summary>
    [Option("cliprange", "PPO: clip the policy ratio to [1 - cliprange, 1 + cliprange].")]
    public double ClipRange { get; init; } = 0.2;

    /// <summary>Weight of the value loss.</summary>
    [Option("vf_coef", "PPO: weight of the value loss.")]
    public double VfCoef { get; init; } = 0.1;

    /// <summary>Clip range of the value prediction around the rollout's value.</summary>
    [Option("cliprange_value", "PPO: clip new values to the rollout's values +- cliprange_value.")]
    public double ClipRangeValue { get; init; } = 0.2;

    /// <summary>GAE discount γ.</summary>
    [Option("gamma", "PPO: GAE discount factor.")]
    public double Gamma { get; init; } = 1.0;

    /// <summary>GAE λ.</summary>
    [Option("lam", "PPO: GAE lambda.")]
    public double Lam { get; init; } = 0.95;

    /// <summary>Rows per forward pass when scoring a rollout batch (log-probs, reference, values).</summary>
    [Option("local_rollout_forward_batch_size", "PPO: rows per forward pass when scoring a rollout batch.")]
    public int LocalRolloutForwardBatchSize { get; init; } = 64;

    /// <summary>Subtracted from the score of a completion that ended without an end-of-sequence token; null: none.</summary>
    [Option("missing_eos_penalty", "PPO: subtract this from the score of completions cut at max_completion_length without an EOS.")]
    public double? MissingEosPenalty { get; init; }

    /// <summary>Checks the values, naming the flag and the fix.</summary>
    /// <exception cref="OspreyException">A value out of range.</exception>
    public void Validate()
    {
        if (NumPpoEpochs < 1) throw new OspreyException($"--num_ppo_epochs must be 1 or more (got {NumPpoEpochs}).");
        if (NumMiniBatches < 1) throw new OspreyException($"--num_mini_batches must be 1 or more (got {NumMiniBatches}).");
        if (LocalRolloutForwardBatchSize < 1) throw new OspreyException($"--local_rollout_forward_batch_size must be 1 or more (got {LocalRolloutForwardBatchSize}).");
        if (!(KlCoef >= 0) || double.IsInfinity(KlCoef)) throw new OspreyException($"--kl_coef must be 0 or more (got {KlCoef}).");
        if (!(ClipRange > 0) || double.IsInfinity(ClipRange)) throw new OspreyException($"--cliprange must be positive (got {ClipRange}).");
        if (!(ClipRangeValue > 0) || double.IsInfinity(ClipRangeValue)) throw new OspreyException($"--cliprange_value must be positive (got {ClipRangeValue}).");
        if (!(VfCoef >= 0) || double.IsInfinity(VfCoef)) throw new OspreyException($"--vf_coef must be 0 or more (got {VfCoef}).");
        if (!(Gamma is >= 0 and <= 1)) throw new OspreyException($"--gamma must be in [0, 1] (got {Gamma}).");
        if (!(Lam is >= 0 and <= 1)) throw new OspreyException($"--lam must be in [0, 1] (got {Lam}).");
        if (MissingEosPenalty is { } p && (double.IsNaN(p) || double.IsInfinity(p))) throw new OspreyException($"--missing_eos_penalty must be a finite number (got {p}).");
    }
}
