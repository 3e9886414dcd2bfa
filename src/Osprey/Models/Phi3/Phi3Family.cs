using System.Text.Json;

namespace Osprey.Models.Phi3;

/// <summary>Phi-3: fused qkv_proj and gate_up_proj, optional partial rotary and sliding window.</summary>
internal sealed class Phi3Family : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["phi3"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["Phi3ForCausalLM"];

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        var c = FamilyConfig.Bind<Phi3Config>(config, file);
        return FamilyConfig.Common(c, FamilyConfig.Layers(c, file, _ => c.SlidingWindow is > 0), tieDefault: false) with
        {
            FusedQkv = true,
            FusedGateUp = true,
        };
    }
}
