using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Models.Llava;

/// <summary>
/// LLaVA (model_type "llava", LlavaForConditionalGeneration) and LLaVA-NeXT ("llava_next"): a CLIP or SigLIP vision
/// encoder, a two-layer projector, and a language model of any supported text family, read from text_config with
/// that family's own reader. Fields a config leaves out take transformers' defaults (the hub's llava-1.5 and
/// llava-v1.6 configs list only what differs from them).
/// </summary>
internal sealed class LlavaFamily : IModelFamily
{
    /// <summary>The two model types.</summary>
    public static readonly string[] Types = ["llava", "llava_next"];

    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => Types;
    /// <inheritdoc />
    public IReadOnlyList<string> Architectures { get; } = ["LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration"];

    /// <summary>The language model's spec (see <see cref="ReadText"/>): what a LLaVA folder loads as a <see cref="CausalLM"/>.</summary>
    public DecoderSpec ReadSpec(JsonDocument config, string file) => ReadText(config, file);

    // transformers' config defaults for the required widths, by text model_type (the hub's LLaVA configs omit them).
    static readonly Dictionary<string, (int Vocab, int Hidden, int Intermediate, int Layers, int Heads)> TextDefaults = new()
    {
        ["llama"] = (32000, 4096, 11008, 32, 32),
        ["mistral"] = (32000, 4096, 14336, 32, 32),
        ["qwen2"] = (151936, 4096, 22016, 32, 32),
    };

    /// <summary>Whether config.json's model_type is llava or llava_next.</summary>
    public static bool Is(JsonDocument config) =>
        config.RootElement.ValueKind == JsonValueKind.Object && config.RootElement.TryGetProperty("model_type", out var t)
        && t.ValueKind == JsonValueKind.String && Types.Contains(t.GetString());

    /// <summary>The language model's spec, from text_config (default: llama) through its family.</summary>
    public static DecoderSpec ReadText(JsonDocument config, string file)
    {
        var root = JsonNode.Parse(config.RootElement.GetRawText())!.AsObject();
        var text = root["text_config"] is JsonObject tc ? (JsonObject)tc.DeepClone() : new JsonObject();
        text["model_type"] ??= "llama";
        var type = text["model_type"]!.GetValue<string>();
        if (Types.Contains(type))
            throw new OspreyException($"{file}: text_config model_type '{type}' is not a text model; it must name the language model (llama, mistral, qwen2, ...).");
        if (TextDefaults.TryGetValue(type, out var d))
        {
            text["vocab_size"] ??= d.Vocab;
            text["hidden_size"] ??= d.Hidden;
            text["intermediate_size"] ??= d.Intermediate;
            text["num_hidden_layers"] ??= d.Layers;
            text["num_attention_heads"] ??= d.Heads;
        }
        // Fields transformers keeps at the top of a composite config fill what text_config leaves out.
        foreach (var key in new[] { "tie_word_embeddings", "eos_token_id", "bos_token_id", "pad_token_id", "dtype", "torch_dtype" })
            if (text[key] is null && root[key] is { } v) text[key] = v.DeepClone();
        text["tie_word_embeddings"] ??= false;
        using var doc = JsonDocument.Parse(text.ToJsonString());
        var family = ModelRegistry.Find(doc, file + " (text_config)");
        return family.ReadSpec(doc, file + " (text_config)");
    }

    /// <summary>The LLaVA side of <paramref name="directory"/>'s config.json; null when it is not a llava or llava_next model.</summary>
    public static LlavaSpec? ReadVision(string directory)
    {
        var file = Path.Combine(directory, "config.json");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
        return Is(doc) ? ReadVision(doc, file) : null;
    }

    /// <summary>The vision side, the feature selection, the projector and the image placeholder id.</summary>
    public static LlavaSpec ReadVision(JsonDocument config, string file)
    {
        var root = config.RootElement;
        var next = root.GetProperty("model_type").GetString() == "llava_next";
        EncoderConfig? vc = null;
        if (root.TryGetProperty("vision_config", out var v) && v.ValueKind == JsonValueKind.Object)
        {
            try { vc = v.Deserialize<EncoderConfig>(); }
            catch (JsonException e) { throw new OspreyException($"{file}: vision_config: {e.Message}", e); }
        }
        var vision = EncoderSpec.From(vc, file);
        var count = vision.Layers + 1;
        var raw = new List<int>();
        if (!root.TryGetProperty("vision_feature_layer", out var fl) || fl.ValueKind == JsonValueKind.Null) raw.Add(-2);
        else if (fl.ValueKind == JsonValueKind.Number) raw.Add(fl.GetInt32());
        else if (fl.ValueKind == JsonValueKind.Array && fl.GetArrayLength() > 0)
            raw.AddRange(fl.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number ? e.GetInt32()
                : throw new OspreyException($"{file}: vision_feature_layer must be a whole number or a list of them.")));
        else throw new OspreyException($"{file}: vision_feature_layer must be a whole number or a non-empty list of them (e.g. -2).");
        var layers = raw.Select(i => i < 0 ? count + i : i).ToList();
        var bad = raw.FirstOrDefault(i => (i < 0 ? count + i : i) is < 0 || (i < 0 ? count + i : i) >= count, int.MinValue);
        if (bad != int.MinValue)
            throw new OspreyException($"{file}: vision_feature_layer {bad} is outside the vision tower's {count} hidden states (-{count}..{count - 1}).");
        var strategy = root.TryGetProperty("vision_feature_select_strategy", out var st) && st.ValueKind == JsonValueKind.String ? st.GetString()! : "default";
        if (strategy is not ("default" or "full"))
            throw new OspreyException($"{file}: vision_feature_select_strategy '{strategy}' must be \"default\" (drop the first position) or \"full\".");
        if (next && strategy == "full")
            throw new OspreyException($"{file}: llava_next with vision_feature_select_strategy \"full\" cannot tile its features (the class position has no place in the grid); use \"default\".");
        var act = root.TryGetProperty("projector_hidden_act", out var pa) && pa.ValueKind == JsonValueKind.String ? pa.GetString()! : "gelu";
        Blocks.VisionActivation.Check(act, file);
        var bias = !root.TryGetProperty("multimodal_projector_bias", out var pb) || pb.ValueKind != JsonValueKind.False;
        int? Id(string name) => root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.Number ? e.GetInt32() : null;
        var imageId = Id("image_token_id") ?? Id("image_token_index") ?? 32000;
        var pinpoints = new List<(int, int)>();
        if (next)
        {
            if (root.TryGetProperty("image_grid_pinpoints", out var pp) && pp.ValueKind == JsonValueKind.Array)
                foreach (var e in pp.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != 2)
                        throw new OspreyException($"{file}: image_grid_pinpoints must list [height, width] pairs.");
                    pinpoints.Add((e[0].GetInt32(), e[1].GetInt32()));
                }
            else pinpoints.AddRange([(336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)]);
            var off = pinpoints.FirstOrDefault(p => p.Item1 % vision.ImageSize != 0 || p.Item2 % vision.ImageSize != 0, (0, 0));
            if (off != (0, 0) || pinpoints.Count == 0)
                throw new OspreyException($"{file}: every image_grid_pinpoints entry must be a multiple of vision_config image_size {vision.ImageSize} (got [{off.Item1}, {off.Item2}]).");
        }
        return new LlavaSpec(vision, layers, strategy == "default", act, bias, imageId, next, pinpoints);
    }
}
