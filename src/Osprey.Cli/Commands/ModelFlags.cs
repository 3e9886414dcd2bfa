using Osprey.Cli.Args;
using Osprey.Models;
using Osprey.Runtime;

namespace Osprey.Cli.Commands;

/// <summary>The flags that say which model to load and where: --model, --device, --torch_dtype.</summary>
internal sealed record ModelFlags(string? Model, DeviceSpec Device, string DType)
{
    public const string Help =
        "  --model DIR|ID           Hugging Face model folder (config.json + *.safetensors), or a hub id (org/name)\n" +
        "                           already in the local Hugging Face or ModelScope cache; 'demo' is the built-in tiny model.\n" +
        "  --device D               auto | cpu | cuda | cuda:N (default auto: CUDA when a CUDA libtorch and GPU are found).\n" +
        "  --torch_dtype T          auto | bfloat16 | float16 | float32 (auto: config dtype on GPU, float32 on CPU).\n";

    public static ModelFlags Read(OptionReader o) =>
        new(o.String("model"), DeviceSpec.Parse(o.String("device", "auto")), o.String("torch_dtype", "auto"));

    public ModelLoadOptions LoadOptions(TextWriter notice) => new() { Device = Device, DType = DType, Notice = notice };

    /// <summary>The model folder: a folder as given, or a hub id found in the local Hugging Face / ModelScope cache.</summary>
    public string RequireFolder()
    {
        if (Model is null) throw new UserError("--model is required; pass a Hugging Face model folder or a hub id in the local cache.");
        if (Model == "demo" && !Directory.Exists(Model)) return DemoModel.EnsureCreated();
        return Hub.HubCache.ResolveModel(Model);
    }
}
