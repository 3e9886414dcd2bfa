using System.Text.Json;

namespace Osprey.Models.Gemma3;

/// <summary>
/// Gemma 3 text: Gemma 2's layout with (1 + w) RMSNorm on queries and keys, no soft-capping in released
/// checkpoints, five sliding layers per global one, and a separate RoPE base for the sliding layers.
/// </summary>
internal sealed class Gemma3Family : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["gemma3_text"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["Gemma3ForCausalLM"];

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        var c = FamilyConfig.Bind<Gemma3TextConfig>(config, file);
        var pattern = c.SlidingWindowPattern ?? 6;
        var layers = FamilyConfig.Layers(c, file, i => (i + 1) % pattern != 0, type =>
        {
            if (type == "sliding_attention" && c.RopeParameters is null)
                // transformers 4 configs: local layers use rope_local_base_freq without scaling.
                return new RopeSettings { Theta = c.RopeLocalBaseFreq ?? 10000.0 };
            return RopeSettings.From(c, file, type, type == "sliding_attention" ? c.RopeLocalBaseFreq : null);
        });
        return Gemma2.Gemma2Family.Spec(c, layers) with { QkNorm = true };
    }
}
