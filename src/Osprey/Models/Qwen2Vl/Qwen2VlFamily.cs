using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Models.Qwen2;

namespace Osprey.Models.Qwen2Vl;

/// <summary>
/// Qwen2-VL and Qwen2.5-VL: a Qwen2 language model with M-RoPE (rope mrope_section) plus a ViT. Reads both layouts of
/// config.json: the hub checkpoints' (text fields at the top) and transformers 5's (text_config), top-level fields
/// filling what text_config leaves out.
/// </summary>
internal sealed class Qwen2VlFamily : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes { get; } = ["qwen2_vl", "qwen2_5_vl"];
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"];

    /// <summary>Whether config.json's model_type is one of the two vision-language types.</summary>
    public static bool Is(JsonDocument config) =>
        config.RootElement.ValueKind == JsonValueKind.Object && config.RootElement.TryGetProperty("model_type", out var t)
        && t.ValueKind == JsonValueKind.String && t.GetString() is "qwen2_vl" or "qwen2_5_vl";

    /// <inheritdoc />
    public DecoderSpec ReadSpec(JsonDocument config, string file)
    {
        using var text = TextConfig(config);
        var c = FamilyConfig.Bind<Qwen2Config>(text, file);
        var layers = FamilyConfig.Layers(c, file, i => c.UseSlidingWindow && c.SlidingWindow is > 0 && i >= c.MaxWindowLayers);
        if (layers[0].Rope.MropeSection is null)
            throw new OspreyException($"{file}: a {c.ModelType} config needs mrope_section in rope_scaling or rope_parameters (e.g. [16, 24, 24]); re-download config.json.");
        return FamilyConfig.Common(c, layers, tieDefault: false) with { QkvBias = true };
    }

    /// <summary>The text model's fields: text_config over the top level (model_type kept from the top).</summary>
    static JsonDocument TextConfig(JsonDocument config)
    {
        var root = JsonNode.Parse(config.RootElement.GetRawText())!.AsObject();
        var merged = new JsonObject();
        foreach (var (k, v) in root)
            if (k is not ("text_config" or "vision_config")) merged[k] = v?.DeepClone();
        if (root["text_config"] is JsonObject tc)
            foreach (var (k, v) in tc)
                if (k != "model_type") merged[k] = v?.DeepClone();
        return JsonDocument.Parse(merged.ToJsonString());
    }

    /// <summary>vision_config and the special-token ids.</summary>
    public static (VisionSpec Vision, int ImageTokenId, int VisionStartTokenId, int VisionEndTokenId) ReadVision(JsonDocument config, DecoderSpec text, string file)
    {
        var root = config.RootElement;
        if (!root.TryGetProperty("vision_config", out var vc) || vc.ValueKind != JsonValueKind.Object)
            throw new OspreyException($"{file}: a {text.ModelType} config needs a vision_config object; re-download config.json.");
        VisionConfig v;
        try { v = vc.Deserialize<VisionConfig>() ?? new VisionConfig(); }
        catch (JsonException e) { throw new OspreyException($"{file}: vision_config: {e.Message}", e); }
        int Id(string name, int fallback) => root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.Number ? e.GetInt32() : fallback;
        var vision = VisionSpec.From(v, text.ModelType == "qwen2_5_vl", text.HiddenSize, file);
        return (vision, Id("image_token_id", 151655), Id("vision_start_token_id", 151652), Id("vision_end_token_id", 151653));
    }
}
