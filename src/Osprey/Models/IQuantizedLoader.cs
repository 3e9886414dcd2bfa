using Osprey.Io;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// Decides, per model folder, whether its linear layers load as quantized bases (<see cref="Blocks.ILinearBase"/>):
/// a folder whose config.json carries a quantization_config, or any folder when quantizing at load was asked for.
/// Implemented above the model (Osprey.Quantization) and handed down through <see cref="ModelLoadOptions.Quantization"/>.
/// </summary>
internal interface IQuantizedLoader
{
    /// <summary>The plan for <paramref name="directory"/>, or null to load it densely; throws <see cref="OspreyException"/> for a quantization it cannot read.</summary>
    IQuantizedFolder? Open(string directory, ScalarType modelDType, Device device);
}
