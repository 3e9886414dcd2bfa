using System.Text.Json;

namespace Osprey.Models;

/// <summary>Helpers the family folders share to turn their config records into a <see cref="DecoderSpec"/>.</summary>
internal static class FamilyConfig
{
    static readonly JsonSerializerOptions Options = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowReadingFromString };

    /// <summary>Binds config.json to a family's record and validates it.</summary>
    public static T Bind<T>(JsonDocument config, string file) where T : TransformerConfig
    {
        T? c;
        try
        {
            c = config.Deserialize<T>(Options);
        }
        catch (JsonException e)
        {
            throw new OspreyException($"{file}: {e.Message.TrimEnd('.')}; fix that field or re-download the model.", e);
        }
        if (c is null) throw new OspreyException($"{file} is empty; point --model at a Hugging Face model folder.");
        c.Validate(file);
        return c;
    }

    /// <summary>
    /// Per-layer settings: layer_types when config.json lists them, else <paramref name="defaultSliding"/>
    /// decides which layers use the sliding window.
    /// </summary>
    public static IReadOnlyList<LayerSpec> Layers(TransformerConfig c, string file, Func<int, bool> defaultSliding,
        Func<string, RopeSettings>? ropeForType = null)
    {
        ropeForType ??= _ => RopeSettings.From(c, file);
        var ropes = new Dictionary<string, RopeSettings>();
        var layers = new LayerSpec[c.NumHiddenLayers];
        for (int i = 0; i < layers.Length; i++)
        {
            var type = c.LayerTypes?[i] ?? (defaultSliding(i) ? "sliding_attention" : "full_attention");
            if (type is not ("full_attention" or "sliding_attention"))
                throw new OspreyException($"{file}: layer_types[{i}] is '{type}'; only full_attention and sliding_attention are supported.");
            var sliding = type == "sliding_attention";
            if (sliding && c.SlidingWindow is not > 0)
                throw new OspreyException($"{file}: layer {i} uses sliding attention but sliding_window is not set; add sliding_window to the config.");
            if (!ropes.TryGetValue(type, out var rope)) ropes[type] = rope = ropeForType(type);
            layers[i] = new LayerSpec(rope, sliding ? c.SlidingWindow : null);
        }
        return layers;
    }

    /// <summary>The fields every family fills the same way.</summary>
    public static DecoderSpec Common(TransformerConfig c, IReadOnlyList<LayerSpec> layers, bool tieDefault) => new()
    {
        ModelType = c.ModelType,
        VocabSize = c.VocabSize,
        HiddenSize = c.HiddenSize,
        IntermediateSize = c.IntermediateSize,
        NumHeads = c.NumAttentionHeads,
        NumKvHeads = c.KvHeads,
        HeadDim = c.HeadDimension,
        RmsNormEps = c.RmsNormEps,
        Layers = layers,
        Activation = c.HiddenAct ?? "silu",
        TieWordEmbeddings = c.TieWordEmbeddings ?? tieDefault,
        EosTokenIds = TransformerConfig.Ids(c.EosTokenId, "eos_token_id"),
        PadTokenId = TransformerConfig.Ids(c.PadTokenId, "pad_token_id") is [var p, ..] ? p : null,
        SavedDType = c.SavedDType,
        MaxPositionEmbeddings = c.MaxPositionEmbeddings,
    };
}
