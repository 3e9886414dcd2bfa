using Osprey.Cli.Args;
using Osprey.Models;
using Osprey.Runtime;

namespace Osprey.Cli.Commands;

/// <summary>The flags that say which model to load and where: --model, --device, --torch_dtype.</summary>
internal sealed record ModelFlags(string? Model, DeviceSpec Device, string DType)
{
    public const string Help =
        "  --model DIR              Hugging Face model folder (config.json + *.safetensors).\n" +
        "  --device D               auto | cpu | cuda | cuda:N (default auto: CUDA when a CUDA libtorch and GPU are found).\n" +
        "  --torch_dtype T          auto | bfloat16 | float16 | float32 (auto: config dtype on GPU, float32 on CPU).\n";

    public static ModelFlags Read(OptionReader o) =>
        new(o.String("model"), DeviceSpec.Parse(o.String("device", "auto")), o.String("torch_dtype", "auto"));

    public ModelLoadOptions LoadOptions(TextWriter notice) => new() { Device = Device, DType = DType, Notice = notice };

    /// <summary>The model folder, checked to exist.</summary>
    public string RequireFolder()
    {
        if (Model is null) throw new UserError("--model is required; pass a Hugging Face model folder.");
        if (!Directory.Exists(Model))
            throw new UserError($"--model {Model} is not a folder; pass a Hugging Face model folder (downloading by hub id comes with `osprey download`).");
        return Model;
    }
}
