using System.Text.Json;

namespace Osprey.Models.Qwen3;

/// <summary>Qwen3: Llama layout plus per-head RMSNorm on queries and keys before RoPE.</summary>
internal sealed class Qwen3Family : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["qwen3"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["Qwen3ForCausalLM"];

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        var c = FamilyConfig.Bind<Qwen3Config>(config, file);
        var layers = FamilyConfig.Layers(c, file, i => c.UseSlidingWindow && c.SlidingWindow is > 0 && i >= c.MaxWindowLayers);
        return FamilyConfig.Common(c, layers, tieDefault: false) with
        {
            QkvBias = c.AttentionBias,
            OutputBias = c.AttentionBias,
            QkNorm = true,
        };
    }
}
