using System.Text.Json.Serialization;

namespace Osprey.Models.Llama;

/// <summary>config.json of Llama 1/2/3 (model_type "llama").</summary>
public sealed record LlamaConfig : TransformerConfig
{
    /// <summary>Bias on q/k/v/o projections.</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary>Bias on gate/up/down projections.</summary>
    [JsonPropertyName("mlp_bias")] public bool MlpBias { get; init; }
}
