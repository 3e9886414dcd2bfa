using System.Text.Json.Nodes;
using Osprey.Models;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// Loads folders with bitsandbytes-quantized linear layers: a folder whose config.json has a bitsandbytes
/// quantization_config is read as it is stored; any other folder is quantized at load when the flags ask for it.
/// </summary>
internal sealed class BnbLoader(QuantizationOptions options) : IQuantizedLoader
{
    /// <inheritdoc />
    public IQuantizedFolder? Open(string directory, ScalarType modelDType, Device device)
    {
        options.Validate();
        var file = Path.Combine(directory, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(file)) as JsonObject;
        var compute = options.Bnb4BitComputeDtype is { } c ? Runtime.DTypes.Parse(c, "--bnb_4bit_compute_dtype") : modelDType;
        if (config?["quantization_config"] is JsonObject stored)
        {
            var method = stored["quant_method"]?.ToString() ?? "(none)";
            if (method != "bitsandbytes")
                throw new OspreyException($"{file}: quantization_config.quant_method '{method}' is not supported; Osprey loads bitsandbytes 4-bit and 8-bit checkpoints, so use an unquantized folder of this model.");
            var bits = stored["load_in_4bit"]?.GetValue<bool>() == true ? 4 : stored["load_in_8bit"]?.GetValue<bool>() == true ? 8
                : throw new OspreyException($"{file}: the bitsandbytes quantization_config sets neither load_in_4bit nor load_in_8bit; the config is damaged.");
            if (options.Active && options.QuantBits != bits)
                throw new OspreyException($"{directory} is already quantized to {bits} bits; drop --quant_method/--quant_bits or pass an unquantized folder.");
            if (options.Bnb4BitComputeDtype is null && stored["bnb_4bit_compute_dtype"]?.ToString() is { } storedCompute && bits == 4)
                compute = Runtime.DTypes.Parse(storedCompute, $"{file}: quantization_config.bnb_4bit_compute_dtype");
            return BnbFolder.Stored(file, stored, bits, compute, device);
        }
        return options.Active ? BnbFolder.AtLoad(options, compute, device, modelDType) : null;
    }
}
