using Osprey.Models.Blocks;

namespace Osprey.Models;

public sealed partial class CausalLM
{
    /// <summary>The decoder stack, for code that runs it one layer at a time (calibrated quantization).</summary>
    internal DecoderModel Decoder => model;

    /// <summary>
    /// Records that the linear layers were given quantized bases after loading (a calibrated export), so
    /// <see cref="Save"/> writes <paramref name="folder"/>'s quantization_config and the bases' tensors.
    /// </summary>
    internal void MarkQuantized(IQuantizedFolder folder) => Quantization = folder;
}
