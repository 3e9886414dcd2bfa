using Osprey.Options;

namespace Osprey.Models;

/// <summary>
/// The flags of <c>osprey export</c> and <c>osprey merge-lora</c> besides the model and adapter flags: where to write
/// the re-saved folder and in what shards, or (<see cref="ToCachedDataset"/>) to encode datasets instead.
/// </summary>
// ms-swift's export arguments that do not apply here (docs/ms-swift-compat.md).
[NoEffectFlagsFrom(typeof(HubUploadFlags))]
[NoEffectFlag("exist_ok", "an existing --output_dir is updated file by file")]
[NoEffectFlag("safe_serialization", "weights are always written as safetensors")]
[NoEffectFlag("quant_n_samples", Quantization)]
[NoEffectFlag("quant_batch_size", Quantization)]
[NoEffectFlag("group_size", Quantization)]
[NoEffectFlag("to_ollama", "Ollama Modelfiles are not written; Ollama imports the safetensors folder")]
[NoEffectFlag("seed", "export is deterministic")]
[NoEffectFlag("max_model_len", "export does not change the model's context")]
[NoEffectFlag("to_mcore", Megatron)]
[NoEffectFlag("to_hf", Megatron)]
[NoEffectFlag("mcore_model", Megatron)]
[NoEffectFlag("mcore_adapters", Megatron)]
[NoEffectFlag("thread_count", Megatron)]
[NoEffectFlag("offload_bridge", Megatron)]
[NoEffectFlag("test_convert_precision", Megatron)]
[NoEffectFlag("test_convert_dtype", Megatron)]
public sealed record ExportOptions
{
    private const string Quantization = "calibration settings are for GPTQ/AWQ export, which Osprey does not write yet; --quant_method bnb needs no calibration";
    private const string Megatron = "Megatron is not part of Osprey";

    /// <summary>--adapters: LoRA adapters merged into the weights (with <see cref="MergeLora"/>).</summary>
    [Option("adapters", "LoRA adapters (checkpoint-N folders or PEFT adapters) merged into the model at load; without --model the base model and template come from the adapter's args.json.", Placeholder = "DIR...", Aliases = ["ckpt_dir"])]
    public IReadOnlyList<string> Adapters { get; init; } = [];

    /// <summary>--merge_lora: merge the adapters into the weights (always on for merge-lora).</summary>
    [Option("merge_lora", "Merge --adapters into the weights and save the result (default output <adapter>-merged).")]
    public bool MergeLora { get; init; }

    /// <summary>--output_dir; null is allowed only when merging (the last adapter's folder + "-merged").</summary>
    [Option("output_dir", "Folder to write (created; existing weights there are replaced).", Placeholder = "DIR")]
    public string? OutputDir { get; init; }

    /// <summary>--max_shard_size, as <see cref="Io.SafetensorsWriter.ParseSize"/> reads it.</summary>
    [Option("max_shard_size", "Largest safetensors shard, e.g. 5GB, 500MB, 2GiB.", Placeholder = "SIZE", DefaultText = "5GB")]
    public string MaxShardSize { get; init; } = "5GB";

    /// <summary>--push_to_hub and the other upload flags: upload the written folder (Hub.HubUpload).</summary>
    [OptionGroup] public HubPushOptions Push { get; init; } = new();

    /// <summary>--to_cached_dataset: encode datasets into --output_dir (osprey encode's flags) instead of exporting.</summary>
    [Option("to_cached_dataset", "Instead: encode --dataset (and --val_dataset) with the model's tokenizer and template into --output_dir as a cached dataset (train.bin, val.bin) for training. Takes the flags of osprey encode (--template, --max_length, --packing, ...).")]
    public bool ToCachedDataset { get; init; }
}
