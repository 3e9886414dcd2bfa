using Osprey.Inference;
using Osprey.Training.Preference;

namespace Osprey.Training.Grpo;

/// <summary>The prompts and settings of a GRPO run (<c>osprey rlhf --rlhf_type grpo</c>).</summary>
public sealed record GrpoRun
{
    /// <summary>Training prompts.</summary>
    public required IReadOnlyList<GrpoPrompt> Prompts { get; init; }

    /// <summary>The GRPO flags.</summary>
    public required GrpoOptions Options { get; init; }

    /// <summary><c>--beta</c> and <c>--loss_type</c>, resolved.</summary>
    public required PreferenceLossOptions Loss { get; init; }

    /// <summary>The sampling defaults of the model (stop ids, pad id); the GRPO flags override temperature, top-p/k and length.</summary>
    public required SamplingParams Sampling { get; init; }

    /// <summary>Turns generated ids into reply text (stop ids removed).</summary>
    public required Func<IReadOnlyList<int>, string> Decode { get; init; }

    /// <summary>The model's tokenizer, which the rollout engine needs; null samples rollouts with <see cref="TokenGenerator"/> instead.</summary>
    public Tokenization.Tokenizer? Tokenizer { get; init; }

    /// <summary>A separate reference model folder (<c>--ref_model</c>); null: the adapter-off base (LoRA) or the base loaded again (full).</summary>
    public string? ReferenceModel { get; init; }
}
