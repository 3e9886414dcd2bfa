using System.Text.Json.Serialization;

namespace Osprey.Models.Gemma2;

/// <summary>config.json of Gemma 2 (model_type "gemma2"); Gemma 3 text extends it.</summary>
public record Gemma2Config : TransformerConfig
{
    /// <summary>Bias on q/k/v/o projections.</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary>MLP activation (Gemma's own field name).</summary>
    [JsonPropertyName("hidden_activation")] public string? HiddenActivation { get; init; }
    /// <summary>Attention scale is query_pre_attn_scalar^-0.5.</summary>
    [JsonPropertyName("query_pre_attn_scalar")] public double? QueryPreAttnScalar { get; init; }
    /// <summary>tanh cap of attention scores.</summary>
    [JsonPropertyName("attn_logit_softcapping")] public double? AttnLogitSoftcapping { get; init; }
    /// <summary>tanh cap of the final logits.</summary>
    [JsonPropertyName("final_logit_softcapping")] public double? FinalLogitSoftcapping { get; init; }
}
