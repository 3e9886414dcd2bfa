using System.Text.Json;

namespace Osprey.Models.Gemma2;

/// <summary>
/// Gemma 2: (1 + w) RMSNorm, sandwich norms, embeddings scaled by sqrt(hidden), attention and final
/// logit soft-capping, sliding window on alternate layers (even layers by default).
/// </summary>
internal sealed class Gemma2Family : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["gemma2"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["Gemma2ForCausalLM"];

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        var c = FamilyConfig.Bind<Gemma2Config>(config, file);
        return Spec(c, FamilyConfig.Layers(c, file, i => (i + 1) % 2 != 0));
    }

    /// <summary>The Gemma layout shared by Gemma 2 and Gemma 3 text.</summary>
    internal static DecoderSpec Spec(Gemma2Config c, IReadOnlyList<LayerSpec> layers)
    {
        return FamilyConfig.Common(c, layers, tieDefault: true) with
        {
            Activation = c.HiddenActivation ?? c.HiddenAct ?? "gelu_pytorch_tanh",
            OffsetNorm = true,
            SandwichNorms = true,
            QkvBias = c.AttentionBias,
            OutputBias = c.AttentionBias,
            AttentionScale = Math.Pow(c.QueryPreAttnScalar ?? c.HeadDimension, -0.5),
            AttentionSoftcap = c.AttnLogitSoftcapping,
            FinalLogitSoftcap = c.FinalLogitSoftcapping,
            EmbeddingScale = Math.Sqrt(c.HiddenSize),
        };
    }
}
