using Osprey.Options;

namespace Osprey.Training.Preference;

/// <summary>
/// The preference-training objective and its hyperparameters, declared as ms-swift's <c>swift rlhf</c> flags. Defaults
/// are ms-swift's; the two that depend on the method are resolved here once: SimPO's beta of 2.0 (ms-swift turns
/// <c>--rlhf_type simpo</c> into CPO with <c>loss_type simpo</c> and beta 2 when none is given) and its cpo_alpha of 0.
/// </summary>
public sealed record PreferenceLossOptions
{
    /// <summary>The algorithm (<c>--rlhf_type</c>), which picks the recipe.</summary>
    [Option("rlhf_type", "The preference method; rm trains a reward model (a scalar head, saved for transformers' AutoModelForSequenceClassification with num_labels 1).", Common = true)]
    public RlhfType RlhfType { get; init; } = RlhfType.Dpo;

    /// <summary>β: the inverse temperature of the implicit reward (DPO, KTO, CPO, SimPO) or ORPO's λ; null takes <see cref="ResolvedBeta"/>.</summary>
    [Option("beta", "Preference strength: the implicit reward's inverse temperature (ORPO: the odds-ratio weight; GRPO: the KL weight, 0 loads no reference).", DefaultText = "0.1; SimPO 2.0; GRPO 0.04", Common = true)]
    public double? Beta { get; init; }

    /// <summary>DPO's loss form: sigmoid, hinge, ipo or robust.</summary>
    [Option("loss_type", "DPO: sigmoid | hinge | ipo | robust. GRPO: grpo | bnpo | dr_grpo | dapo (how token losses are averaged).", DefaultText = "sigmoid; GRPO grpo")]
    public string? LossType { get; init; }

    /// <summary>The loss form as used: <see cref="LossType"/>, else grpo for GRPO and sigmoid otherwise.</summary>
    public string ResolvedLossType => LossType ?? (RlhfType == RlhfType.Grpo ? "grpo" : "sigmoid");

    /// <summary>ε, the assumed rate of flipped preference labels (conservative DPO, robust DPO, CPO/SimPO).</summary>
    [Option("label_smoothing", "DPO/CPO/SimPO: the assumed rate of flipped preference labels.")]
    public double LabelSmoothing { get; init; }

    /// <summary>DPO: weight of the chosen responses' NLL added to the loss (RPO); 0 leaves it out.</summary>
    [Option("rpo_alpha", "DPO: add this times the chosen responses' NLL (0: off).")]
    public double RpoAlpha { get; init; }

    /// <summary>SimPO's target reward margin γ.</summary>
    [Option("simpo_gamma", "SimPO: target reward margin.")]
    public double SimpoGamma { get; init; } = 1.0;

    /// <summary>CPO/SimPO: weight of the chosen responses' NLL term; null takes <see cref="ResolvedCpoAlpha"/>.</summary>
    [Option("cpo_alpha", "CPO/SimPO: weight of the chosen responses' NLL.", DefaultText = "1.0; SimPO 0")]
    public double? CpoAlpha { get; init; }

    /// <summary>KTO: weight of the desirable samples' losses.</summary>
    [Option("desirable_weight", "KTO: weight of desirable examples.")]
    public double DesirableWeight { get; init; } = 1.0;

    /// <summary>KTO: weight of the undesirable samples' losses.</summary>
    [Option("undesirable_weight", "KTO: weight of undesirable examples.")]
    public double UndesirableWeight { get; init; } = 1.0;

    /// <summary>Reward model: weight of the penalty mean((r_chosen + r_rejected)²) that centres rewards on 0.</summary>
    [Option("center_rewards_coefficient", "Reward model: pull mean rewards toward 0.")]
    public double CenterRewardsCoefficient { get; init; }

    /// <summary>β as used: <see cref="Beta"/>, else 2.0 for SimPO and 0.1 otherwise.</summary>
    public double ResolvedBeta => Beta ?? RlhfType switch { RlhfType.Simpo => 2.0, RlhfType.Grpo => 0.04, _ => 0.1 };

    /// <summary>cpo_alpha as used: <see cref="CpoAlpha"/>, else 0 for SimPO and 1.0 otherwise.</summary>
    public double ResolvedCpoAlpha => CpoAlpha ?? (RlhfType == RlhfType.Simpo ? 0 : 1.0);

    /// <summary>True for methods scored against a reference model (DPO, KTO).</summary>
    public bool NeedsReference => RlhfType is RlhfType.Dpo or RlhfType.Kto;

    static readonly string[] DpoLossTypes = ["sigmoid", "hinge", "ipo", "robust"];
    static readonly string[] GrpoLossTypes = ["grpo", "bnpo", "dr_grpo", "dapo"];

    /// <summary>Throws when a value is out of range, naming the flag.</summary>
    /// <exception cref="OspreyException">A value is out of range.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(RlhfType)) throw new OspreyException($"--rlhf_type must be one of dpo, kto, orpo, simpo, cpo, rm, grpo, ppo (got '{RlhfType}').");
        if (RlhfType == RlhfType.Grpo)
        {
            // GRPO's beta weighs the KL term; 0 is allowed and means no reference model.
            if (!(ResolvedBeta >= 0) || double.IsInfinity(ResolvedBeta)) throw new OspreyException($"--beta for grpo must be 0 or more (got {Beta}).");
            if (!GrpoLossTypes.Contains(ResolvedLossType))
                throw new OspreyException($"--loss_type for grpo must be one of {string.Join(", ", GrpoLossTypes)} (got '{LossType}').");
        }
        else if (!(ResolvedBeta > 0) || double.IsInfinity(ResolvedBeta)) throw new OspreyException($"--beta must be a positive number (got {Beta}).");
        if (RlhfType == RlhfType.Dpo && !DpoLossTypes.Contains(ResolvedLossType))
            throw new OspreyException($"--loss_type for dpo must be one of {string.Join(", ", DpoLossTypes)} (got '{LossType}').");
        if (!(LabelSmoothing >= 0 && LabelSmoothing < 0.5)) throw new OspreyException($"--label_smoothing must be in [0, 0.5) (got {LabelSmoothing}).");
        if (!(RpoAlpha >= 0) || double.IsInfinity(RpoAlpha)) throw new OspreyException($"--rpo_alpha must be 0 or more (got {RpoAlpha}).");
        if (!double.IsFinite(SimpoGamma)) throw new OspreyException($"--simpo_gamma must be a finite number (got {SimpoGamma}).");
        if (!(ResolvedCpoAlpha >= 0) || double.IsInfinity(ResolvedCpoAlpha)) throw new OspreyException($"--cpo_alpha must be 0 or more (got {CpoAlpha}).");
        if (!(DesirableWeight > 0) || double.IsInfinity(DesirableWeight)) throw new OspreyException($"--desirable_weight must be positive (got {DesirableWeight}).");
        if (!(UndesirableWeight > 0) || double.IsInfinity(UndesirableWeight)) throw new OspreyException($"--undesirable_weight must be positive (got {UndesirableWeight}).");
        if (!(CenterRewardsCoefficient >= 0) || double.IsInfinity(CenterRewardsCoefficient))
            throw new OspreyException($"--center_rewards_coefficient must be 0 or more (got {CenterRewardsCoefficient}).");
    }
}
