using Osprey.Models.Blocks;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// The serving adapters of one linear layer, plugged in as the layer's <see cref="ILinearDelta"/>: each adds its
/// low-rank delta to the rows <see cref="ServingRows"/> assigns it, so a layer whose output is a slice of a fused
/// projection keeps the one matrix multiply.
/// </summary>
internal sealed class ServingLoraSet(ServingRows rows) : ILinearDelta, IDisposable
{
    readonly List<ServingLora> _adapters = [];

    /// <summary>Adds serving adapter <paramref name="lora"/> to this layer's set.</summary>
    public void Add(ServingLora lora) => _adapters.Add(lora);

    /// <inheritdoc />
    public bool Active => rows.Any;

    /// <inheritdoc />
    public void AddTo(Tensor x, Tensor y) => ServingLora.AddDeltas(_adapters, rows, x, y);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var lora in _adapters) lora.Dispose();
        _adapters.Clear();
    }
}
