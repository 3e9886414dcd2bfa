using System.Text.Json.Nodes;
using Osprey.Models;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// Chooses how a folder's linear layers load by its config.json quantization_config: GPTQ, AWQ and FP8 checkpoints are
/// read as stored (<see cref="PrequantizedFolder"/>); bitsandbytes folders and unquantized ones go to
/// <paramref name="bitsandbytes"/>; any other quant_method is a one-sentence error naming it.
/// </summary>
internal sealed class PrequantizedLoader(QuantizationOptions options, IQuantizedLoader bitsandbytes) : IQuantizedLoader
{
    /// <inheritdoc />
    public IQuantizedFolder? Open(string directory, ScalarType modelDType, Device device)
    {
        var file = Path.Combine(directory, "config.json");
        var stored = (JsonNode.Parse(File.ReadAllText(file)) as JsonObject)?["quantization_config"] as JsonObject;
        if (stored is null) return bitsandbytes.Open(directory, modelDType, device);
        var method = stored["quant_method"]?.ToString() ?? "(none)";
        if (method == "bitsandbytes") return bitsandbytes.Open(directory, modelDType, device);
        if (!PrequantizedFolder.Methods.Contains(method))
            throw new OspreyException($"{file}: quantization_config.quant_method '{method}' is not supported; Osprey loads bitsandbytes, gptq, awq (GEMM) and fp8 checkpoints, so use one of those or an unquantized folder of this model.");
        if (options.Active)
            throw new OspreyException($"{directory} is already quantized ({method}); drop --quant_method/--quant_bits or pass an unquantized folder.");
        options.Validate();
        var compute = options.Bnb4BitComputeDtype is { } c ? Runtime.DTypes.Parse(c, "--bnb_4bit_compute_dtype") : modelDType;
        return PrequantizedFolder.Open(file, method, stored, compute, device);
    }
}
