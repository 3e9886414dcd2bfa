using System.Text.Json;

namespace Osprey.Models.Mistral;

/// <summary>Mistral: Llama layout without biases; every layer uses sliding_window when it is set.</summary>
internal sealed class MistralFamily : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["mistral"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["MistralForCausalLM"];

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        var c = FamilyConfig.Bind<MistralConfig>(config, file);
        return FamilyConfig.Common(c, FamilyConfig.Layers(c, file, _ => c.SlidingWindow is > 0), tieDefault: false);
    }
}
