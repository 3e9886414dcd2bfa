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
[NoEffectFlag("quant_batch_size", Quantization)]
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
    private const string Quantization = "GPTQ/AWQ calibration runs one sample at a time";
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

    /// <summary>--to_gguf: write one .gguf file for llama.cpp instead of a Hugging Face folder.</summary>
    [Option("to_gguf", "Instead: write the model (with --adapters merged) as one GGUF file for llama.cpp, Ollama and LLamaSharp: <output_dir>/<name>-<gguf_quant>.gguf with the tokenizer and chat template (docs/export.md).")]
    public bool ToGguf { get; init; }

    /// <summary>--to_ollama: with --to_gguf, also write an Ollama Modelfile beside the .gguf.</summary>
    [Option("to_ollama", "With --to_gguf true: also write an Ollama Modelfile beside the .gguf (FROM, the chat template translated to Ollama's syntax, stop tokens, generation_config.json's sampling parameters); then `ollama create NAME -f Modelfile`.")]
    public bool ToOllama { get; init; }

    /// <summary>--gguf_quant: the llama.cpp tensor type of the GGUF file.</summary>
    [Option("gguf_quant", "GGUF weight type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m, q5_k_m or q6_k (llama.cpp's names; norms stay f32).", Placeholder = "TYPE", DefaultText = "f16")]
    public string GgufQuant { get; init; } = "f16";

    /// <summary>--quant_n_samples: calibration samples for --quant_method gptq/awq.</summary>
    [Option("quant_n_samples", "GPTQ/AWQ export: calibration samples taken from --dataset (encoded with the template, at most --max_length tokens each, 2048 when unset); an extra eighth is held out to report each layer's error against round-to-nearest.")]
    public int QuantNSamples { get; init; } = 128;

    /// <summary>--group_size: inputs per quantization group for GPTQ/AWQ (−1: one group per row).</summary>
    [Option("group_size", "GPTQ/AWQ export: inputs sharing one scale and zero point (-1: a whole row).")]
    public int GroupSize { get; init; } = 128;

    /// <summary>--gptq_desc_act: GPTQ act-order.</summary>
    [Option("gptq_desc_act", "GPTQ export: quantize columns in order of decreasing activation energy (act-order; writes a permuted g_idx).")]
    public bool GptqDescAct { get; init; }

    /// <summary>--gptq_sym: symmetric GPTQ grid.</summary>
    [Option("gptq_sym", "GPTQ export: symmetric grid (zero point fixed at the middle); false fits each group's min and max.")]
    public bool GptqSym { get; init; } = true;

    /// <summary>--fp8_scheme: tensor, channel or block.</summary>
    [Option("fp8_scheme", "FP8 export: tensor (one scale per weight), channel (one per output row, fbgemm_fp8) or block (one per 128x128 block, weight_scale_inv as Qwen3-FP8 ships).", Placeholder = "S")]
    public string Fp8Scheme { get; init; } = "block";
}
