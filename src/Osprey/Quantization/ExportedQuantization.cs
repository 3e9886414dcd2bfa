using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Models.Blocks;

namespace Osprey.Quantization;

/// <summary>The quantization of a model quantized in memory for export: only its config matters (it loads nothing).</summary>
internal sealed class ExportedQuantization(JsonObject config, string description) : IQuantizedFolder
{
    /// <inheritdoc />
    public JsonObject Config { get; } = config;

    /// <inheritdoc />
    public bool IsCompanion(string tensorName) => false;

    /// <inheritdoc />
    public ILinearBase? Load(string layerPath, SafetensorsCheckpoint checkpoint) => null;

    /// <inheritdoc />
    public string Describe(int layers) => $"osprey: quantized {layers} linear layers ({description}).";
}
