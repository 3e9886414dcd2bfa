using Osprey.Options;

namespace Osprey.Training.Preference;

/// <summary>The preference method of <c>osprey rlhf</c> (<c>--rlhf_type</c>); each has its own recipe.</summary>
public enum RlhfType
{
    /// <summary>Direct preference optimisation against a reference model (pairwise recipe).</summary>
    Dpo,

    /// <summary>Kahneman-Tversky optimisation on rows labelled desirable or not (KTO recipe).</summary>
    Kto,

    /// <summary>Odds-ratio preference optimisation, reference-free (pairwise recipe).</summary>
    Orpo,

    /// <summary>Simple preference optimisation with length-normalised rewards, reference-free (pairwise recipe).</summary>
    Simpo,

    /// <summary>Contrastive preference optimisation, reference-free (pairwise recipe).</summary>
    Cpo,

    /// <summary>A reward model: a scalar head trained on pairs (reward-model recipe).</summary>
    [OptionValue("rm")]
    RewardModel,

    /// <summary>Group relative policy optimisation on prompts, with rollouts scored by reward functions (GRPO recipe).</summary>
    Grpo,

    /// <summary>Proximal policy optimisation with a value model, GAE and a KL penalty in the rewards (PPO recipe).</summary>
    Ppo,
}
