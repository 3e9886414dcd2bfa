using System.Text.Json;
using System.Text.Json.Serialization;

namespace Osprey.Models;

/// <summary>
/// The config.json fields every supported decoder shares, bound by their Hugging Face names. Each family
/// derives its own record and adds what only it has.
/// </summary>
public record TransformerConfig
{
    /// <summary>config.json model_type.</summary>
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "";
    /// <summary>config.json architectures.</summary>
    [JsonPropertyName("architectures")] public string[]? Architectures { get; init; }
    /// <summary>Vocabulary size (rows of the embedding).</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    /// <summary>Model width.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; }
    /// <summary>MLP width.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; }
    /// <summary>Decoder layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; }
    /// <summary>Query heads.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; }
    /// <summary>Key/value heads (grouped-query attention); defaults to the query heads.</summary>
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    /// <summary>Per-head width; defaults to hidden_size / num_attention_heads.</summary>
    [JsonPropertyName("head_dim")] public int? HeadDim { get; init; }
    /// <summary>RMSNorm epsilon.</summary>
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>MLP activation (Llama family name).</summary>
    [JsonPropertyName("hidden_act")] public string? HiddenAct { get; init; }
    /// <summary>Whether lm_head shares the embedding matrix.</summary>
    [JsonPropertyName("tie_word_embeddings")] public bool? TieWordEmbeddings { get; init; }
    /// <summary>Longest position the model was configured for.</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>Sliding-window width, where the family uses one.</summary>
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; init; }
    /// <summary>Per-layer attention kind: "full_attention" or "sliding_attention".</summary>
    [JsonPropertyName("layer_types")] public string[]? LayerTypes { get; init; }
    /// <summary>transformers 5 RoPE settings (flat, or keyed by layer type).</summary>
    [JsonPropertyName("rope_parameters")] public JsonElement? RopeParameters { get; init; }
    /// <summary>transformers 4 RoPE base.</summary>
    [JsonPropertyName("rope_theta")] public double? RopeTheta { get; init; }
    /// <summary>transformers 4 RoPE scaling.</summary>
    [JsonPropertyName("rope_scaling")] public JsonElement? RopeScaling { get; init; }
    /// <summary>Fraction of each head that is rotated.</summary>
    [JsonPropertyName("partial_rotary_factor")] public double? PartialRotaryFactor { get; init; }
    /// <summary>The dtype the weights were saved in (transformers 5).</summary>
    [JsonPropertyName("dtype")] public string? DType { get; init; }
    /// <summary>The dtype the weights were saved in (transformers 4).</summary>
    [JsonPropertyName("torch_dtype")] public string? TorchDType { get; init; }
    /// <summary>End-of-sequence id(s): a number or a list.</summary>
    [JsonPropertyName("eos_token_id")] public JsonElement? EosTokenId { get; init; }
    /// <summary>Beginning-of-sequence id.</summary>
    [JsonPropertyName("bos_token_id")] public JsonElement? BosTokenId { get; init; }
    /// <summary>Padding id.</summary>
    [JsonPropertyName("pad_token_id")] public JsonElement? PadTokenId { get; init; }

    /// <summary>Key/value heads with the default applied.</summary>
    [JsonIgnore] public int KvHeads => NumKeyValueHeads ?? NumAttentionHeads;

    /// <summary>Per-head width with the default applied.</summary>
    [JsonIgnore] public int HeadDimension => HeadDim ?? HiddenSize / NumAttentionHeads;

    /// <summary>The saved dtype name, from either spelling.</summary>
    [JsonIgnore] public string? SavedDType => DType ?? TorchDType;

    /// <summary>Checks the shape fields every family needs; throws naming the field and file.</summary>
    public virtual void Validate(string file)
    {
        Require(VocabSize > 0, "vocab_size", file);
        Require(HiddenSize > 0, "hidden_size", file);
        Require(IntermediateSize > 0, "intermediate_size", file);
        Require(NumHiddenLayers > 0, "num_hidden_layers", file);
        Require(NumAttentionHeads > 0, "num_attention_heads", file);
        Require(KvHeads > 0 && NumAttentionHeads % KvHeads == 0, "num_key_value_heads", file,
            "must divide num_attention_heads");
        Require(HeadDim is not null || HiddenSize % NumAttentionHeads == 0, "hidden_size", file,
            "must be a multiple of num_attention_heads when head_dim is absent");
        if (LayerTypes is not null)
            Require(LayerTypes.Length == NumHiddenLayers, "layer_types", file, "must name one type per layer");
    }

    /// <summary>Throws an <see cref="OspreyException"/> about <paramref name="field"/> unless <paramref name="ok"/>.</summary>
    protected static void Require(bool ok, string field, string file, string what = "must be a positive number")
    {
        if (!ok) throw new OspreyException($"{file}: field '{field}' {what}; fix the config or re-download the model.");
    }

    /// <summary>Token ids from a config value that may be a number, a list or null.</summary>
    public static IReadOnlyList<int> Ids(JsonElement? e, string field)
    {
        if (e is not JsonElement v) return [];
        return v.ValueKind switch
        {
            JsonValueKind.Number => [Id(v, field)],
            JsonValueKind.Array => v.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.Number).Select(x => Id(x, field)).ToArray(),
            _ => [],
        };
    }

    static int Id(JsonElement x, string field) => x.TryGetInt32(out var id) && id >= 0
        ? id
        : throw new OspreyException($"{field} {x.GetRawText()} is not a non-negative integer token id; fix it in config.json or generation_config.json.");
}
