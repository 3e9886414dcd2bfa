using System.Text.Json;

namespace Osprey.Models.Llama;

/// <summary>Llama 1/2/3: pre-norm decoder, SwiGLU MLP, RoPE with optional linear or llama3 scaling.</summary>
internal sealed class LlamaFamily : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["llama"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["LlamaForCausalLM"];

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        var c = FamilyConfig.Bind<LlamaConfig>(config, file);
        return FamilyConfig.Common(c, FamilyConfig.Layers(c, file, _ => false), tieDefault: false) with
        {
            QkvBias = c.AttentionBias,
            OutputBias = c.AttentionBias,
            MlpBias = c.MlpBias,
        };
    }
}
