using System.Text.Json;

namespace Osprey.Models.Qwen2;

/// <summary>Qwen2 / Qwen2.5: Llama layout with bias on q/k/v (not o), tied embeddings on small sizes.</summary>
internal sealed class Qwen2Family : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["qwen2"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["Qwen2ForCausalLM"];

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        var c = FamilyConfig.Bind<Qwen2Config>(config, file);
        var layers = FamilyConfig.Layers(c, file, i => c.UseSlidingWindow && c.SlidingWindow is > 0 && i >= c.MaxWindowLayers);
        return FamilyConfig.Common(c, layers, tieDefault: false) with { QkvBias = true };
    }
}
