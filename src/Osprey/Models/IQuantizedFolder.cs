using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models.Blocks;

namespace Osprey.Models;

/// <summary>How one folder's linear layers load quantized (see <see cref="IQuantizedLoader"/>).</summary>
internal interface IQuantizedFolder
{
    /// <summary>True for checkpoint tensors that belong to a quantized weight besides its <c>weight</c> (absmax, quant maps, quant state, SCB).</summary>
    bool IsCompanion(string tensorName);

    /// <summary>The quantized base of the linear layer at <paramref name="layerPath"/> (module path, e.g. model.layers.0.mlp.up_proj), or null to load it densely.</summary>
    ILinearBase? Load(string layerPath, SafetensorsCheckpoint checkpoint);

    /// <summary>The quantization_config written into config.json when the model is saved quantized.</summary>
    JsonObject Config { get; }

    /// <summary>One line saying what was quantized, for the log.</summary>
    string Describe(int layers);
}
