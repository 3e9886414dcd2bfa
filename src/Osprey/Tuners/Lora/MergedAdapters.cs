using Osprey.Models;

namespace Osprey.Tuners.Lora;

/// <summary>
/// <c>--adapters DIR...</c> at load: the base model with every adapter merged into its weights, in order, as
/// <c>osprey infer</c> and <c>osprey export --merge_lora</c> take them.
/// </summary>
public static class MergedAdapters
{
    /// <summary>
    /// Loads the model in <paramref name="folder"/> and merges each of <paramref name="adapters"/> into it, one line
    /// per adapter to <paramref name="log"/>; the model is disposed when a merge fails.
    /// </summary>
    public static CausalLM Load(string folder, ModelLoadOptions load, IReadOnlyList<string> adapters, TextWriter log)
    {
        var model = CausalLM.Load(folder, load);
        try
        {
            // A quantized base is dequantized first: the merged weights are dense (ms-swift's merge on a QLoRA base does the same).
            if (adapters.Count > 0 && model.QuantizedLayerCount > 0)
                log.WriteLine($"osprey: dequantized {model.Dequantize()} quantized layers to {Runtime.DTypes.Name(model.DType)} before merging; the merged model is not quantized.");
            foreach (var path in adapters)
            {
                var n = PeftAdapter.MergeInto(model, path);
                log.WriteLine($"osprey: merged adapter {path} ({n} layers).");
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
