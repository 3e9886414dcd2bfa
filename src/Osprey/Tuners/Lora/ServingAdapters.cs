using Osprey.Models.Blocks;

namespace Osprey.Tuners.Lora;

/// <summary>
/// A model's serving adapters (kept with the model, see <see cref="Models.CausalLM.State{T}"/>): their names in load
/// order, the per-layer sets and the row assignment every layer shares.
/// </summary>
internal sealed class ServingAdapters : IDisposable
{
    /// <summary>The adapter names: adapter number k is at index k − 1.</summary>
    public List<string> Names { get; } = [];

    /// <summary>The serving adapters of each adapted layer.</summary>
    public Dictionary<LinearLayer, ServingLoraSet> Layers { get; } = [];

    /// <summary>Which batch rows use which adapter in the next forward passes.</summary>
    public ServingRows Rows { get; } = new();

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (layer, set) in Layers)
        {
            layer.SetDelta(null);
            set.Dispose();
        }
        Layers.Clear();
        Rows.Dispose();
    }
}
