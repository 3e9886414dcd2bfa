using System.Text.Json.Serialization;

namespace Osprey.Models.Qwen2;

/// <summary>config.json of Qwen2 / Qwen2.5 (model_type "qwen2").</summary>
public sealed record Qwen2Config : TransformerConfig
{
    /// <summary>Whether sliding-window attention is on (layers from max_window_layers up).</summary>
    [JsonPropertyName("use_sliding_window")] public bool UseSlidingWindow { get; init; }
    /// <summary>Layers below this index use full attention when the sliding window is on.</summary>
    [JsonPropertyName("max_window_layers")] public int MaxWindowLayers { get; init; } = 28;
}
