using Osprey.Models;
using Osprey.Options;
using Osprey.Quantization;
using Osprey.Runtime;

namespace Osprey.Hub;

/// <summary>
/// Which model a verb works on and where it runs: <c>--model</c> (a folder, a hub id fetched through the caches, or
/// <c>demo</c>), <c>--use_hf</c>, <c>--device</c> and <c>--torch_dtype</c>.
/// </summary>
public sealed record ModelOptions
{
    /// <summary>A model folder, a hub id (org/name) or <c>demo</c>.</summary>
    [Option("model", "Hugging Face model folder (config.json + *.safetensors), or a hub id (org/name) taken from the local Hugging Face / ModelScope cache, else downloaded on first use (HF_HUB_OFFLINE=1: cache only); 'demo' is the built-in tiny model.", Placeholder = "DIR|ID", Common = true)]
    public string? Model { get; init; }

    /// <summary>Download hub ids from Hugging Face (true) or ModelScope (false); null follows USE_HF.</summary>
    [Option("use_hf", "Download hub ids from Hugging Face (true) or ModelScope (false).", DefaultText = "USE_HF, else ModelScope")]
    public bool? UseHf { get; init; }

    /// <summary>auto, cpu, cuda or cuda:N.</summary>
    [Option("device", "auto | cpu | cuda | cuda:N (auto: CUDA when a CUDA libtorch and a GPU are found).", Placeholder = "D")]
    public string Device { get; init; } = "auto";

    /// <summary>auto, bfloat16, float16 or float32.</summary>
    [Option("torch_dtype", "auto | bfloat16 | float16 | float32 (auto: config dtype on GPU, float32 on CPU).", Placeholder = "T")]
    public string TorchDtype { get; init; } = "auto";

    /// <summary>--quant_method and the bitsandbytes flags: quantize the model at load (QLoRA), or write it quantized (export).</summary>
    [OptionGroup]
    public QuantizationOptions Quantization { get; init; } = new();

    /// <summary>
    /// How to load the model; notices (such as falling back to the CPU) go to <paramref name="notice"/>. A folder whose
    /// config.json has a bitsandbytes quantization_config loads quantized whatever the flags say.
    /// </summary>
    public ModelLoadOptions LoadOptions(TextWriter? notice) =>
        new() { Device = DeviceSpec.Parse(Device), DType = TorchDtype, Notice = notice, Quantization = new BnbLoader(Quantization) };

    /// <summary>The model's local folder: the demo model (created on first use), a folder, or a hub id from the caches or downloaded.</summary>
    /// <exception cref="OspreyException">No --model, or the id cannot be found or downloaded.</exception>
    public string ResolveFolder(TextWriter? log)
    {
        if (Model is null) throw new OspreyException("--model is required; pass a Hugging Face model folder or a hub id (org/name).");
        if (Model == "demo" && !Directory.Exists(Model)) return DemoModel.EnsureCreated();
        return HubResolver.ResolveModelAsync(Model, UseHf, offline: false, log ?? TextWriter.Null).GetAwaiter().GetResult();
    }
}
