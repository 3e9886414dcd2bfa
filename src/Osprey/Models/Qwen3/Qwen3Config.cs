using System.Text.Json.Serialization;

namespace Osprey.Models.Qwen3;

/// <summary>config.json of Qwen3 dense models (model_type "qwen3").</summary>
public sealed record Qwen3Config : TransformerConfig
{
    /// <summary>Bias on q/k/v/o projections.</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary>Whether sliding-window attention is on (layers from max_window_layers up).</summary>
    [JsonPropertyName("use_sliding_window")] public bool UseSlidingWindow { get; init; }
    /// <summary>Layers below this index use full attention when the sliding window is on.</summary>
    [JsonPropertyName("max_window_layers")] public int MaxWindowLayers { get; init; } = 28;
}
