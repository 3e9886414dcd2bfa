using Osprey.Datasets;
using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Training.MemoryFit;

/// <summary>
/// What <c>osprey estimate</c> takes: the very groups <c>osprey sft</c> binds (model with its quantization flags, the
/// encoding group for <c>--max_length</c>, the trainer group with LoRA), so a flag means the same in both verbs.
/// </summary>
public sealed record EstimateOptions
{
    /// <summary>The model (only its config.json is read), dtype and quantization.</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>The encoding flags; <c>--max_length</c> is the tokens per sample.</summary>
    [OptionGroup]
    public TemplateEncodingOptions Encoding { get; init; } = new();

    /// <summary>How the run would train.</summary>
    [OptionGroup]
    public TrainerOptions Trainer { get; init; } = new();

    /// <summary>The same choices as sft's options (so <see cref="MemoryPlan.From"/> reads one shape).</summary>
    public SftOptions AsSft() => new() { Model = Model, Encoding = Encoding, Trainer = Trainer };
}
