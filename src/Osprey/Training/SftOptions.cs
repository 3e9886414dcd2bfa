using Osprey.Datasets;
using Osprey.Hub;
using Osprey.Options;
using Osprey.Templates;

namespace Osprey.Training;

/// <summary>
/// Everything <c>osprey sft</c> and <c>osprey pt</c> take, declared once: the model, the data and how it is encoded,
/// how to train, and where the run goes. <see cref="FineTuning.Sft"/> runs it.
/// </summary>
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

    /// <summary>A chat template name or file instead of the model's own.</summary>
    [Option("template", "Chat template: a Jinja file, a tokenizer's named template or an ms-swift name.", DefaultText = "the model's own chat_template", Placeholder = "NAME")]
    public string? Template { get; init; }

    /// <summary>System prompt for conversations without one.</summary>
    [Option("system", "System prompt for conversations without one.", Placeholder = "TEXT")]
    public string? System { get; init; }

    /// <summary>Which tokens carry loss; null takes the method's default (<see cref="FineTuning"/>).</summary>
    [Option("loss_scale", "Which tokens carry loss.", DefaultText = "default; pt: all; rlhf: last_round")]
    public LossScale? LossScale { get; init; }

    /// <summary>Longest sample in tokens (null: the model's context is not enforced here).</summary>
    [Option("max_length", "Longest sample in tokens; see --truncation_strategy.", DefaultText = "no limit")]
    public int? MaxLength { get; init; }

    /// <summary>What happens to longer samples.</summary>
    [Option("truncation_strategy", "What happens to samples over --max_length.")]
    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.Delete;

    /// <summary>Pack samples into --max_length rows (attention stays within each sample).</summary>
    [Option("packing", "Pack samples into --max_length rows (attention stays within each sample).")]
    public bool Packing { get; init; }

    /// <summary>Encoding threads (0: all cores).</summary>
    [Option("dataset_num_proc", "Encoding threads (0: all cores).")]
    public int DatasetNumProc { get; init; }

    /// <summary>Reuse cached encodings.</summary>
    [Option("load_from_cache_file", "Reuse encodings cached from an identical earlier run.")]
    public bool LoadFromCacheFile { get; init; } = true;

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
