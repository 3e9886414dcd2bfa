using Osprey.Models;
using Osprey.Options;
using Osprey.Quantization;
using Osprey.Runtime;

namespace Osprey.Hub;

/// <summary>
/// Which model a verb works on and where it runs: <c>--model</c> (a folder, a hub id fetched through the caches, or
/// <c>demo</c>), <c>--use_hf</c>, <c>--device</c> and <c>--torch_dtype</c>.
/// </summary>
// ms-swift's base, model, quantization and Ray arguments that only steer Python machinery (docs/ms-swift-compat.md).
[NoEffectFlag("tuner_backend", Python)]
[NoEffectFlag("external_plugins", Plugins)]
[NoEffectFlag("custom_register_path", Plugins)]
[NoEffectFlag("model_kwargs", "multimodal preprocessing settings do not apply to Osprey's text models")]
[NoEffectFlag("load_args", "Osprey always reads the base model and template from an adapter's args.json when --model is not given")]
[NoEffectFlag("load_data_args", "Osprey does not read data flags back from args.json; pass --val_dataset")]
[NoEffectFlag("ddp_timeout", OneDevice)]
[NoEffectFlag("ddp_backend", OneDevice)]
[NoEffectFlag("ignore_args_error", Python)]
[NoEffectFlag("model_type", "Osprey reads the architecture from config.json")]
[NoEffectFlag("model_revision", "Osprey loads the revision found in the cache or downloaded from the default branch")]
[NoEffectFlag("task_type", "Osprey reads causal LM or sequence classification from config.json (architectures)")]
[NoEffectFlag("attn_impl", "Osprey's attention is its own scaled-dot-product kernel")]
[NoEffectFlag("new_special_tokens", "adding tokens to the vocabulary is not supported yet")]
[NoEffectFlag("num_labels", "Osprey reads num_labels from config.json")]
[NoEffectFlag("problem_type", "reward models are trained as regression, the only kind Osprey has")]
[NoEffectFlag("rope_scaling", "Osprey uses the rope_scaling of config.json")]
[NoEffectFlag("device_map", "the model sits on one device, chosen with --device")]
[NoEffectFlag("max_memory", "the model sits on one device, chosen with --device")]
[NoEffectFlag("local_repo_path", Python)]
[NoEffectFlag("init_strategy", "every weight comes from the checkpoint; a missing one is an error")]
[NoEffectFlag("hqq_axis", Hqq)]
[NoEffectFlag("use_ray", OneDevice)]
[NoEffectFlag("ray_exp_name", OneDevice)]
[NoEffectFlag("device_groups", OneDevice)]
public sealed record ModelOptions
{
    private const string Python = "it configures a Python library that Osprey does not use";
    private const string Plugins = "Osprey does not load Python plugins";
    private const string OneDevice = "Osprey starts its own workers (NPROC_PER_NODE, docs/distributed.md), not Ray or device groups";
    private const string Hqq = "Osprey quantizes with --quant_method bnb only (HQQ is not supported)";

    /// <summary>A model folder, a hub id (org/name) or <c>demo</c>.</summary>
    [Option("model", "Hugging Face model folder (config.json + *.safetensors), or a hub id (org/name) taken from the local Hugging Face / ModelScope cache, else downloaded on first use (HF_HUB_OFFLINE=1: cache only); 'demo' is the built-in tiny model.", Placeholder = "DIR|ID", Common = true, Aliases = ["model_id_or_path"])]
    public string? Model { get; init; }

    /// <summary>Download hub ids from Hugging Face (true) or ModelScope (false); null follows USE_HF.</summary>
    [Option("use_hf", "Download hub ids from Hugging Face (true) or ModelScope (false).", DefaultText = "USE_HF, else ModelScope")]
    public bool? UseHf { get; init; }

    /// <summary>--hub_token: the hub token for downloading --model and for --push_to_hub; null reads HF_TOKEN or MODELSCOPE_API_TOKEN.</summary>
    [Option("hub_token", "Hub access token for downloading --model and for --push_to_hub uploads (a write token for those).", Placeholder = "TOKEN", DefaultText = "HF_TOKEN or MODELSCOPE_API_TOKEN", Secret = true)]
    public string? HubToken { get; init; }

    /// <summary>auto, cpu, cuda or cuda:N.</summary>
    [Option("device", "auto | cpu | cuda | cuda:N (auto: CUDA when a CUDA libtorch and a GPU are found).", Placeholder = "D")]
    public string Device { get; init; } = "auto";

    /// <summary>auto, bfloat16, float16 or float32.</summary>
    [Option("torch_dtype", "auto | bfloat16 | float16 | float32 (auto: config dtype on GPU, float32 on CPU).", Placeholder = "T")]
    public string TorchDtype { get; init; } = "auto";

    /// <summary>ms-swift's (Hugging Face Trainer's) <c>--bf16 true</c>: bfloat16 weights when --torch_dtype is auto.</summary>
    [Option("bf16", "Load in bfloat16 when --torch_dtype is auto (Hugging Face Trainer's spelling).")]
    public bool? Bf16 { get; init; }

    /// <summary>ms-swift's (Hugging Face Trainer's) <c>--fp16 true</c>: float16 weights when --torch_dtype is auto.</summary>
    [Option("fp16", "Load in float16 when --torch_dtype is auto (Hugging Face Trainer's spelling).")]
    public bool? Fp16 { get; init; }

    /// <summary>The dtype to load: --torch_dtype, else bfloat16/float16 for --bf16/--fp16 true, else auto.</summary>
    /// <exception cref="OspreyException">--bf16 true and --fp16 true together.</exception>
    public string ResolvedDtype()
    {
        if (Bf16 == true && Fp16 == true) throw new OspreyException("--bf16 true and --fp16 true ask for two dtypes; keep one (or use --torch_dtype).");
        if (TorchDtype != "auto") return TorchDtype;
        return Bf16 == true ? "bfloat16" : Fp16 == true ? "float16" : "auto";
    }


    /// <summary>--quant_method and the bitsandbytes flags: quantize the model at load (QLoRA), or write it quantized (export).</summary>
    [OptionGroup]
    public QuantizationOptions Quantization { get; init; } = new();

    /// <summary>
    /// How to load the model; notices (such as falling back to the CPU) go to <paramref name="notice"/>. A folder whose
    /// config.json has a bitsandbytes quantization_config loads quantized whatever the flags say.
    /// </summary>
    public ModelLoadOptions LoadOptions(TextWriter? notice) =>
        new() { Device = DeviceSpec.Parse(Device), DType = ResolvedDtype(), Notice = notice, Quantization = new PrequantizedLoader(Quantization, new BnbLoader(Quantization)) };

    /// <summary>The model's local folder: the demo model (created on first use), a folder, or a hub id from the caches or downloaded.</summary>
    /// <exception cref="OspreyException">No --model, or the id cannot be found or downloaded.</exception>
    public string ResolveFolder(TextWriter? log)
    {
        if (Model is null) throw new OspreyException("--model is required; pass a Hugging Face model folder or a hub id (org/name).");
        if (Model == "demo" && !Directory.Exists(Model)) return DemoModel.EnsureCreated();
        return HubResolver.ResolveModelAsync(Model, UseHf, offline: false, log ?? TextWriter.Null, token: HubToken).GetAwaiter().GetResult();
    }
}
