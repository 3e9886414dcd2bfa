namespace Osprey.Training.Preference;

/// <summary>
/// The preference-training objective and its hyperparameters, as ms-swift's <c>swift rlhf</c> flags name them. Defaults
/// are ms-swift's except where noted: the caller applies SimPO's beta of 2.0 (ms-swift turns <c>--rlhf_type simpo</c>
/// into CPO with <c>loss_type simpo</c> and beta 2 when none is given) and ms-swift's RPO default.
/// </summary>
public sealed record PreferenceLossOptions
{
    /// <summary>The algorithm (<c>--rlhf_type</c>): dpo, kto, orpo, simpo, cpo or rm.</summary>
    public string RlhfType { get; init; } = "dpo";

    /// <summary>β: the inverse temperature of the implicit reward (DPO, KTO, CPO, SimPO) or ORPO's λ (<c>--beta</c>).</summary>
    public double Beta { get; init; } = 0.1;

    /// <summary>DPO's loss form (<c>--loss_type</c>): sigmoid, hinge, ipo or robust.</summary>
    public string LossType { get; init; } = "sigmoid";

    /// <summary>ε, the assumed rate of flipped preference labels (conservative DPO, robust DPO, CPO/SimPO) (<c>--label_smoothing</c>).</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>DPO: weight of the chosen responses' NLL added to the loss (RPO); 0 leaves it out (<c>--rpo_alpha</c>).</summary>
    public double RpoAlpha { get; init; }

    /// <summary>SimPO's target reward margin γ (<c>--simpo_gamma</c>).</summary>
    public double SimpoGamma { get; init; } = 1.0;

    /// <summary>CPO/SimPO: weight of the chosen responses' NLL term (<c>--cpo_alpha</c>).</summary>
    public double CpoAlpha { get; init; } = 1.0;

    /// <summary>KTO: weight of the desirable samples' losses (<c>--desirable_weight</c>).</summary>
    public double DesirableWeight { get; init; } = 1.0;

    /// <summary>KTO: weight of the undesirable samples' losses (<c>--undesirable_weight</c>).</summary>
    public double UndesirableWeight { get; init; } = 1.0;

    /// <summary>Reward model: weight of the penalty mean((r_chosen + r_rejected)²) that centres rewards on 0 (<c>--center_rewards_coefficient</c>).</summary>
    public double CenterRewardsCoefficient { get; init; }

    static readonly string[] RlhfTypes = ["dpo", "kto", "orpo", "simpo", "cpo", "rm"];
    static readonly string[] DpoLossTypes = ["sigmoid", "hinge", "ipo", "robust"];

    /// <summary>Throws when a value is out of range, naming the flag.</summary>
    /// <exception cref="OspreyException">A value is out of range.</exception>
    public void Validate()
    {
        if (!RlhfTypes.Contains(RlhfType)) throw new OspreyException($"--rlhf_type must be one of {string.Join(", ", RlhfTypes)} (got '{RlhfType}').");
        if (!(Beta > 0) || double.IsInfinity(Beta)) throw new OspreyException($"--beta must be a positive number (got {Beta}).");
        if (RlhfType == "dpo" && !DpoLossTypes.Contains(LossType))
            throw new OspreyException($"--loss_type for dpo must be one of {string.Join(", ", DpoLossTypes)} (got '{LossType}').");
        if (!(LabelSmoothing >= 0 && LabelSmoothing < 0.5)) throw new OspreyException($"--label_smoothing must be in [0, 0.5) (got {LabelSmoothing}).");
        if (!(RpoAlpha >= 0) || double.IsInfinity(RpoAlpha)) throw new OspreyException($"--rpo_alpha must be 0 or more (got {RpoAlpha}).");
        if (!double.IsFinite(SimpoGamma)) throw new OspreyException($"--simpo_gamma must be a finite number (got {SimpoGamma}).");
        if (!(CpoAlpha >= 0) || double.IsInfinity(CpoAlpha)) throw new OspreyException($"--cpo_alpha must be 0 or more (got {CpoAlpha}).");
        if (!(DesirableWeight > 0) || double.IsInfinity(DesirableWeight)) throw new OspreyException($"--desirable_weight must be positive (got {DesirableWeight}).");
        if (!(UndesirableWeight > 0) || double.IsInfinity(UndesirableWeight)) throw new OspreyException($"--undesirable_weight must be positive (got {UndesirableWeight}).");
        if (!(CenterRewardsCoefficient >= 0) || double.IsInfinity(CenterRewardsCoefficient))
            throw new OspreyException($"--center_rewards_coefficient must be 0 or more (got {CenterRewardsCoefficient}).");
    }
}
