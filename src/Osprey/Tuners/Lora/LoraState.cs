namespace Osprey.Tuners.Lora;

/// <summary>A model's training LoRA adapters by module path (kept with the model, see <see cref="Models.CausalLM.State{T}"/>).</summary>
internal sealed class LoraState
{
    /// <summary>The adapter of each adapted layer, by Hugging Face module path, in attach order.</summary>
    public Dictionary<string, LoraWeights> Layers { get; } = new(StringComparer.Ordinal);
}
