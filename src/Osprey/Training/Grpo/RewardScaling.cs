using Osprey.Options;

namespace Osprey.Training.Grpo;

/// <summary>How GRPO divides the group-centred rewards (<c>--scale_rewards</c>, ms-swift's and TRL's values).</summary>
public enum RewardScaling
{
    /// <summary>By the standard deviation of each prompt's group (GRPO).</summary>
    Group,

    /// <summary>By the standard deviation of the whole generation batch.</summary>
    Batch,

    /// <summary>Not at all (Dr. GRPO).</summary>
    None,
}
