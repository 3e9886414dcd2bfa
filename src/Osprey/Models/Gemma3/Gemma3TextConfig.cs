using System.Text.Json.Serialization;

namespace Osprey.Models.Gemma3;

/// <summary>config.json of Gemma 3 text models (model_type "gemma3_text"): Gemma 2's fields plus local RoPE.</summary>
public sealed record Gemma3TextConfig : Gemma2.Gemma2Config
{
    /// <summary>transformers 4: RoPE base of the sliding (local) layers.</summary>
    [JsonPropertyName("rope_local_base_freq")] public double? RopeLocalBaseFreq { get; init; }
    /// <summary>transformers 4: every Nth layer is global.</summary>
    [JsonPropertyName("sliding_window_pattern")] public int? SlidingWindowPattern { get; init; }
}
