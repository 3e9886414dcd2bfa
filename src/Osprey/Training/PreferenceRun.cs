using Osprey.Datasets;
using Osprey.Training.Preference;

namespace Osprey.Training;

/// <summary>
/// The encoded data and objective of a preference run (<c>osprey rlhf</c>): chosen/rejected pairs (DPO, SimPO, CPO,
/// ORPO, reward models) or labelled examples (KTO), the loss, and where the reference model comes from.
/// </summary>
public sealed record PreferenceRun
{
    /// <summary>Training pairs (pairwise methods and reward models).</summary>
    public IReadOnlyList<PreferencePair> Train { get; init; } = [];

    /// <summary>Validation pairs.</summary>
    public IReadOnlyList<PreferencePair> Validation { get; init; } = [];

    /// <summary>Training examples (KTO).</summary>
    public IReadOnlyList<KtoExample> KtoTrain { get; init; } = [];

    /// <summary>Validation examples (KTO).</summary>
    public IReadOnlyList<KtoExample> KtoValidation { get; init; } = [];

    /// <summary>Training items of this method: KTO examples or pairs.</summary>
    public int TrainCount => Loss.RlhfType == RlhfType.Kto ? KtoTrain.Count : Train.Count;

    /// <summary>Validation items of this method.</summary>
    public int ValidationCount => Loss.RlhfType == RlhfType.Kto ? KtoValidation.Count : Validation.Count;

    /// <summary>The objective and its hyperparameters.</summary>
    public required PreferenceLossOptions Loss { get; init; }

    /// <summary>A separate reference model folder (<c>--ref_model</c>); null uses the policy's base.</summary>
    public string? ReferenceModel { get; init; }

    /// <summary>LoRA adapters merged into the reference (<c>--ref_adapters</c>).</summary>
    public IReadOnlyList<string> ReferenceAdapters { get; init; } = [];

    /// <summary>DPO: score every pair with the reference once before training, then free it (<c>--precompute_ref_log_probs</c>).</summary>
    public bool PrecomputeReferenceLogProbs { get; init; }
}
