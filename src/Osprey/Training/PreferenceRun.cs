using Osprey.Datasets;
using Osprey.Training.Preference;

namespace Osprey.Training;

/// <summary>Preference training (<c>osprey rlhf</c>): the pairs, the loss, and where the reference model comes from.</summary>
public sealed record PreferenceRun
{
    /// <summary>Training pairs (empty for KTO).</summary>
    public IReadOnlyList<PreferencePair> Train { get; init; } = [];

    /// <summary>Validation pairs (may be empty).</summary>
    public IReadOnlyList<PreferencePair> Validation { get; init; } = [];

    /// <summary>KTO's unpaired training examples.</summary>
    public IReadOnlyList<KtoExample> KtoTrain { get; init; } = [];

    /// <summary>KTO's validation examples.</summary>
    public IReadOnlyList<KtoExample> KtoValidation { get; init; } = [];

    /// <summary>The number of training items the plan visits (pairs, or KTO examples).</summary>
    public int TrainCount => Loss.RlhfType == "kto" ? KtoTrain.Count : Train.Count;

    /// <summary>The number of validation items.</summary>
    public int ValidationCount => Loss.RlhfType == "kto" ? KtoValidation.Count : Validation.Count;

    /// <summary>The loss and its coefficients.</summary>
    public required PreferenceLossOptions Loss { get; init; }

    /// <summary>
    /// A separate reference model folder (<c>--ref_model</c>). Null: with LoRA the reference is the same weights with
    /// the adapters switched off (no second copy); in full training the base model is loaded a second time.
    /// </summary>
    public string? ReferenceModel { get; init; }

    /// <summary>
    /// LoRA adapters merged into the reference model (<c>--ref_adapters</c>): the reference is then its own frozen copy,
    /// base (or <see cref="ReferenceModel"/>) plus these adapters.
    /// </summary>
    public IReadOnlyList<string> ReferenceAdapters { get; init; } = [];

    /// <summary>
    /// <c>--precompute_ref_log_probs</c> (DPO): score every training and validation pair with the reference once, before
    /// the first step, and keep only those numbers; a frozen reference copy is then freed before training starts.
    /// </summary>
    public bool PrecomputeReferenceLogProbs { get; init; }
}
