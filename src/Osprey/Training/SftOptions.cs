using Osprey.Datasets;
using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Training;

/// <summary>
/// Everything <c>osprey sft</c> and <c>osprey pt</c> take, declared once: the model, the data and how it is encoded,
/// how to train, and where the run goes. <see cref="FineTuning.Sft"/> runs it.
/// </summary>
// ms-swift's training arguments that do not apply here (docs/ms-swift-compat.md).
[NoEffectFlag("lazy_tokenize", "sft encodes every row up front on --dataset_num_proc threads; --streaming reads and encodes rows as training goes")]
[NoEffectFlag("max_model_len", "the context is config.json's max_position_embeddings; --max_length limits samples")]
[NoEffectFlag("packing_length", "packed rows are --max_length tokens long")]
[NoEffectFlag("packing_num_proc", "packing runs in one pass")]
[NoEffectFlag("adapters", "training does not start from existing adapters yet; --resume_from_checkpoint DIR --resume_only_model true starts from a checkpoint's weights")]
public sealed record SftOptions
{

    /// <summary>The model and its device.</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>The datasets and how rows are read.</summary>
    [OptionGroup]
    public DatasetOptions Data { get; init; } = new();

    /// <summary>Folders written by <c>osprey export --to_cached_dataset</c>, used instead of encoding.</summary>
    [Option("cached_dataset", "Train on folders written by osprey export --to_cached_dataset (no encoding).", Placeholder = "DIR...")]
    public IReadOnlyList<string> CachedDatasets { get; init; } = [];

    /// <summary>The template and length flags that shape the encoded samples.</summary>
    [OptionGroup]
    public TemplateEncodingOptions Encoding { get; init; } = new();

    /// <summary>How to train.</summary>
    [OptionGroup]
    public TrainerOptions Trainer { get; init; } = new();

    /// <summary>Where runs go; each run is a new v{N}-{time} folder inside.</summary>
    [Option("output_dir", "Where runs go; each run is DIR/v{N}-{time}/.", DefaultText = "output/<model name>", Placeholder = "DIR", Common = true)]
    public string? OutputDir { get; init; }

    /// <summary>Put the run in a new v{N}-{time} folder.</summary>
    [Option("add_version", "Put the run in a new v{N}-{time} folder.")]
    public bool AddVersion { get; init; } = true;
}
