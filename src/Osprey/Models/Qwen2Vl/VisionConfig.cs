using System.Text.Json.Serialization;

namespace Osprey.Models.Qwen2Vl;

/// <summary>config.json's vision_config of Qwen2-VL and Qwen2.5-VL, with transformers' field names. Qwen2-VL names the
/// tower width embed_dim (hidden_size is then the merger's output); Qwen2.5-VL names it hidden_size and the output
/// out_hidden_size.</summary>
internal sealed record VisionConfig
{
    [JsonPropertyName("depth")] public int Depth { get; init; } = 32;
    [JsonPropertyName("embed_dim")] public int? EmbedDim { get; init; }
    [JsonPropertyName("hidden_size")] public int? HiddenSize { get; init; }
    [JsonPropertyName("out_hidden_size")] public int? OutHiddenSize { get; init; }
    [JsonPropertyName("intermediate_size")] public int? IntermediateSize { get; init; }
    [JsonPropertyName("mlp_ratio")] public double MlpRatio { get; init; } = 4;
    [JsonPropertyName("hidden_act")] public string? HiddenAct { get; init; }
    [JsonPropertyName("num_heads")] public int NumHeads { get; init; } = 16;
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    [JsonPropertyName("patch_size")] public int PatchSize { get; init; } = 14;
    [JsonPropertyName("spatial_merge_size")] public int SpatialMergeSize { get; init; } = 2;
    [JsonPropertyName("temporal_patch_size")] public int TemporalPatchSize { get; init; } = 2;
    [JsonPropertyName("window_size")] public int? WindowSize { get; init; }
    [JsonPropertyName("fullatt_block_indexes")] public int[]? FullAttBlockIndexes { get; init; }
    [JsonPropertyName("tokens_per_second")] public double? TokensPerSecond { get; init; }
}
