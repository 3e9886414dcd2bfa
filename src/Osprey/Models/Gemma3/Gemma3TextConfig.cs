using System.Text.Json.Serialization;

namespace Osprey.Models.Gemma3;

/// <summary>config.json of Gemma 3 text models (model_type "gemma3_text").</summary>
public sealed record Gemma3TextConfig : TransformerConfig
{
    /// <summary>Bias on q/k/v/o projections.</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary>MLP activation (Gemma's own field name).</summary>
    [JsonPropertyName("hidden_activation")] public string? HiddenActivation { get; init; }
    /// <summary>Attention scale is query_pre_attn_scalar^-0.5.</summary>
    [JsonPropertyName("query_pre_attn_scalar")] public double? QueryPreAttnScalar { get; init; }
    /// <summary>tanh cap of attention scores (null in released Gemma 3).</summary>
    [JsonPropertyName("attn_logit_softcapping")] public double? AttnLogitSoftcapping { get; init; }
    /// <summary>tanh cap of the final logits (null in released Gemma 3).</summary>
    [JsonPropertyName("final_logit_softcapping")] public double? FinalLogitSoftcapping { get; init; }
    /// <summary>transformers 4: RoPE base of the sliding (local) layers.</summary>
    [JsonPropertyName("rope_local_base_freq")] public double? RopeLocalBaseFreq { get; init; }
    /// <summary>transformers 4: every Nth layer is global.</summary>
    [JsonPropertyName("sliding_window_pattern")] public int? SlidingWindowPattern { get; init; }
}
