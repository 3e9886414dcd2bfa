namespace Osprey.Tuners.Lora;

/// <summary>A model's training LoRA adapters by module path (kept with the model, see <see cref="Models.CausalLM.State{T}"/>).</summary>
internal sealed class LoraState
{
    /// <summary>The adapter of each adapted layer, by Hugging Face module path, in attach order.</summary>
    public Dictionary<string, LoraWeights> Layers { get; } = new(StringComparer.Ordinal);

    /// <summary>The adapters that share one A-product because their projections read the same input (q/k/v, gate/up).</summary>
    public List<LoraSharedInput> SharedInputs { get; } = [];

    /// <summary>The stacked projections (q/k/v, gate/up) whose adapters are applied to their one base output at once.</summary>
    public List<LoraStackedProjection> StackedProjections { get; } = [];
}
