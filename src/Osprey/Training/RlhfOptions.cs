using Osprey.Options;
using Osprey.Training.Preference;
using Osprey.Tuners.Lora;

namespace Osprey.Training;

/// <summary>
/// Everything <c>osprey rlhf</c> takes: the preference method and its loss, the reference model, and every fine-tuning
/// option. <see cref="FineTuning.Rlhf"/> runs it.
/// </summary>
public sealed record RlhfOptions
{
    /// <summary>The method (<c>--rlhf_type</c>) and its loss hyperparameters.</summary>
    [OptionGroup]
    public PreferenceLossOptions Loss { get; init; } = new();

    /// <summary>A separate reference model (DPO, KTO).</summary>
    [Option("ref_model", "DPO/KTO reference model (default: LoRA uses the base weights with adapters off; full training loads the base model a second time).", Placeholder = "DIR|ID")]
    public string? ReferenceModel { get; init; }

    /// <summary>LoRA adapters merged into the reference.</summary>
    [Option("ref_adapters", "LoRA adapters merged into the reference (a separate frozen copy), e.g. the SFT adapter.", Placeholder = "DIR...")]
    public IReadOnlyList<string> ReferenceAdapters { get; init; } = [];

    /// <summary>DPO: reference scores once before training.</summary>
    [Option("precompute_ref_log_probs", "DPO: score all pairs with the reference once before training, then free a separate reference copy.")]
    public bool PrecomputeReferenceLogProbs { get; init; }

    /// <summary>The model, data, training and output options shared with <c>osprey sft</c>.</summary>
    [OptionGroup]
    public SftOptions FineTune { get; init; } = new();

    /// <summary>Checks the preference-specific options, naming the flag and the fix.</summary>
    /// <exception cref="OspreyException">A value does not fit the method.</exception>
    public void Validate()
    {
        var type = Loss.RlhfType;
        if (PrecomputeReferenceLogProbs && type != RlhfType.Dpo)
            throw new OspreyException($"--precompute_ref_log_probs applies to dpo only: {(type == RlhfType.Kto ? "KTO's KL estimate pairs examples within each micro-batch, so its reference scores cannot be computed ahead" : $"{OptionSet.ChoiceText(type)} uses no reference model")}; drop the flag.");
        foreach (var a in ReferenceAdapters)
            if (!PeftAdapter.IsAdapter(a)) throw new OspreyException($"--ref_adapters {a} has no adapter_config.json; pass LoRA checkpoint folders or PEFT adapters.");
        Loss.Validate();
    }
}
