using Osprey.Options;
using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>
/// The template and length flags that shape encoded samples (<c>--template</c>, <c>--max_length</c>,
/// <c>--packing</c>, ...), declared once for every verb that encodes: <c>osprey sft/pt/rlhf</c> and
/// <c>osprey encode</c>.
/// </summary>
// ms-swift's template arguments that do not apply here (docs/ms-swift-compat.md).
[NoEffectFlag("agent_template", "tools are rendered by the chat template itself")]
[NoEffectFlag("use_chat_template", "sft uses the chat template; osprey pt trains on plain text")]
[NoEffectFlag("padding_free", "Osprey pads each micro-batch to its longest sample; --packing packs rows without cross-attention")]
[NoEffectFlag("padding_side", "training pads on the right")]
[NoEffectFlag("response_prefix", "the chat template decides how a reply starts")]
[NoEffectFlag("template_backend", "Osprey renders chat templates with its own Jinja engine")]
public sealed record TemplateEncodingOptions
{
    /// <summary>A chat template name or file instead of the model's own.</summary>
    [Option("template", "Chat template: a Jinja file, a tokenizer's named template or an ms-swift name.", DefaultText = "the model's own chat_template", Placeholder = "NAME")]
    public string? Template { get; init; }

    /// <summary>System prompt for conversations without one.</summary>
    [Option("system", "System prompt for conversations without one.", Placeholder = "TEXT")]
    public string? System { get; init; }

    /// <summary>Which tokens carry loss; null takes the verb's default (default; pt: all; rlhf: last_round).</summary>
    [Option("loss_scale", "Which tokens carry loss.", DefaultText = "default; pt: all; rlhf: last_round")]
    public LossScale? LossScale { get; init; }

    /// <summary>Longest sample in tokens (null: training takes the model's context, max_position_embeddings in config.json, as ms-swift does).</summary>
    [Option("max_length", "Longest sample in tokens; see --truncation_strategy.", DefaultText = "the model's context (max_position_embeddings in config.json)")]
    public int? MaxLength { get; init; }

    /// <summary>What happens to longer samples.</summary>
    [Option("truncation_strategy", "What happens to samples over --max_length.")]
    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.Delete;

    /// <summary>Pack samples into --max_length rows (attention stays within each sample).</summary>
    [Option("packing", "Pack samples into --max_length rows (attention stays within each sample).")]
    public bool Packing { get; init; }

    /// <summary>--norm_bbox: how grounding rows' boxes are written (null: the model's way, as ms-swift chooses).</summary>
    [Option("norm_bbox", "How grounding rows' objects.bbox are written: norm1000 (0-1000 grid) or none (pixels of the resized image).", DefaultText = "norm1000 for Qwen2-VL, none for Qwen2.5-VL")]
    public NormBbox? NormBbox { get; init; }

    /// <summary>--max_pixels / --min_pixels for vision-language rows (ms-swift's template arguments).</summary>
    [OptionGroup]
    public Osprey.Images.ImageOptions ImageSizes { get; init; } = new();

    /// <summary>Encoding threads (0: all cores).</summary>
    [Option("dataset_num_proc", "Encoding threads (0: all cores).")]
    public int DatasetNumProc { get; init; }

    /// <summary>Reuse cached encodings.</summary>
    [Option("load_from_cache_file", "Reuse encodings cached from an identical earlier run.")]
    public bool LoadFromCacheFile { get; init; } = true;

    /// <summary>Checks the length flags, naming the flag.</summary>
    /// <exception cref="OspreyException">--max_length is not positive, or --packing has no --max_length.</exception>
    public void Validate()
    {
        if (MaxLength is <= 0) throw new OspreyException($"--max_length must be positive, got {MaxLength}.");
        if (Packing && MaxLength is null) throw new OspreyException("--packing needs --max_length N: packed rows are N tokens long.");
    }

    /// <summary>
    /// What the encoder takes: these flags with the dataset's <paramref name="strict"/>; <paramref name="packing"/>
    /// overrides --packing (preference pairs are never packed) and an unset --loss_scale is <c>default</c>.
    /// </summary>
    public EncodingOptions ToEncodingOptions(bool strict, bool? packing = null) => new()
    {
        Template = Template,
        System = System,
        LossScale = LossScale ?? Templates.LossScale.Default,
        MaxLength = MaxLength,
        Truncation = Truncation,
        Packing = packing ?? Packing,
        Strict = strict,
        Threads = DatasetNumProc,
    };
}
