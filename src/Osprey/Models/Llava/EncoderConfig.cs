using System.Text.Json.Serialization;

namespace Osprey.Models.Llava;

/// <summary>config.json's vision_config of a LLaVA model: transformers' CLIPVisionConfig (model_type
/// "clip_vision_model") or SiglipVisionConfig ("siglip_vision_model"). Absent fields take transformers' defaults for
/// that type (see <see cref="EncoderSpec.From"/>).</summary>
internal sealed record EncoderConfig
{
    [JsonPropertyName("model_type")] public string? ModelType { get; init; }
    [JsonPropertyName("hidden_size")] public int? HiddenSize { get; init; }
    [JsonPropertyName("intermediate_size")] public int? IntermediateSize { get; init; }
    [JsonPropertyName("num_hidden_layers")] public int? NumHiddenLayers { get; init; }
    [JsonPropertyName("num_attention_heads")] public int? NumAttentionHeads { get; init; }
    [JsonPropertyName("num_channels")] public int? NumChannels { get; init; }
    [JsonPropertyName("image_size")] public int? ImageSize { get; init; }
    [JsonPropertyName("patch_size")] public int? PatchSize { get; init; }
    [JsonPropertyName("hidden_act")] public string? HiddenAct { get; init; }
    [JsonPropertyName("layer_norm_eps")] public double? LayerNormEps { get; init; }
}
