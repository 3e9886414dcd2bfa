using Osprey.Cli.Args;
using Osprey.Models;
using Osprey.Runtime;

namespace Osprey.Cli.Commands;

/// <summary>The flags that say which model to load and where: --model, --use_hf, --device, --torch_dtype.</summary>
internal sealed record ModelFlags(string? Model, DeviceSpec Device, string DType)
{
    /// <summary><c>--use_hf</c>: true downloads hub ids from Hugging Face, false from ModelScope; null follows <c>USE_HF</c>.</summary>
    public bool? UseHf { get; init; }

    public const string Help =
        "  --model DIR|ID           Hugging Face model folder (config.json + *.safetensors), or a hub id (org/name): taken\n" +
        "                           from the local Hugging Face / ModelScope cache, else downloaded on first use (offline\n" +
        "                           with HF_HUB_OFFLINE=1: cache only); 'demo' is the built-in tiny model.\n" +
        "  --use_hf B               Download hub ids from Hugging Face (true) or ModelScope (false; default: USE_HF, else ModelScope).\n" +
        "  --device D               auto | cpu | cuda | cuda:N (default auto: CUDA when a CUDA libtorch and GPU are found).\n" +
        "  --torch_dtype T          auto | bfloat16 | float16 | float32 (auto: config dtype on GPU, float32 on CPU).\n";

    public static ModelFlags Read(OptionReader o) =>
        new(o.String("model"), DeviceSpec.Parse(o.String("device", "auto")), o.String("torch_dtype", "auto")) { UseHf = o.Bool("use_hf") };

    public ModelLoadOptions LoadOptions(TextWriter notice) => new() { Device = Device, DType = DType, Notice = notice };

    /// <summary>
    /// The model folder: a folder as given, a hub id found in the local Hugging Face / ModelScope cache, or a hub id
    /// downloaded now (from the hub --use_hf / USE_HF picks, progress on <paramref name="log"/>, stderr by default);
    /// with HF_HUB_OFFLINE=1 a hub id missing from the caches is an error.
    /// </summary>
    public string RequireFolder(TextWriter? log = null)
    {
        if (Model is null) throw new UserError("--model is required; pass a Hugging Face model folder or a hub id (org/name).");
        if (Model == "demo" && !Directory.Exists(Model)) return DemoModel.EnsureCreated();
        try
        {
            return Hub.HubResolver.ResolveModelAsync(Model, UseHf, offline: false, log ?? Console.Error).GetAwaiter().GetResult();
        }
        catch (UserError)
        {
            throw;
        }
        catch (OspreyException e)
        {
            throw new UserError(e.Message, e);
        }
    }
}
