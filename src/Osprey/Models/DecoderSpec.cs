namespace Osprey.Models;

/// <summary>
/// The shape and switches of a decoder-only transformer, produced by a family from its config.json.
/// The shared blocks (attention, norms, MLP, RoPE, KV cache) are composed from this; nothing else in
/// Osprey switches on model type.
/// </summary>
public sealed record DecoderSpec
{
    /// <summary>config.json model_type the spec came from.</summary>
    public required string ModelType { get; init; }
    /// <summary>Vocabulary size.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Model width.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>MLP width.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Query heads.</summary>
    public required int NumHeads { get; init; }
    /// <summary>Key/value heads.</summary>
    public required int NumKvHeads { get; init; }
    /// <summary>Per-head width.</summary>
    public required int HeadDim { get; init; }
    /// <summary>RMSNorm epsilon.</summary>
    public required double RmsNormEps { get; init; }
    /// <summary>The per-layer settings; the count is the number of layers.</summary>
    public required IReadOnlyList<LayerSpec> Layers { get; init; }
    /// <summary>MLP activation: silu, gelu, gelu_pytorch_tanh.</summary>
    public string Activation { get; init; } = "silu";
    /// <summary>Gemma's norm: scales by (1 + weight) in float32.</summary>
    public bool OffsetNorm { get; init; }
    /// <summary>Bias on q/k/v projections.</summary>
    public bool QkvBias { get; init; }
    /// <summary>Bias on the output projection.</summary>
    public bool OutputBias { get; init; }
    /// <summary>Bias on MLP projections.</summary>
    public bool MlpBias { get; init; }
    /// <summary>One qkv_proj instead of q/k/v (Phi-3).</summary>
    public bool FusedQkv { get; init; }
    /// <summary>One gate_up_proj instead of gate/up (Phi-3).</summary>
    public bool FusedGateUp { get; init; }
    /// <summary>Per-head RMSNorm on queries and keys before RoPE (Qwen3, Gemma 3).</summary>
    public bool QkNorm { get; init; }
    /// <summary>Gemma 2/3 norms around attention and MLP outputs (post_attention/pre_/post_feedforward).</summary>
    public bool SandwichNorms { get; init; }
    /// <summary>Softmax scale; null means 1/sqrt(head_dim).</summary>
    public double? AttentionScale { get; init; }
    /// <summary>tanh soft-capping of attention scores (Gemma 2).</summary>
    public double? AttentionSoftcap { get; init; }
    /// <summary>tanh soft-capping of the final logits (Gemma 2).</summary>
    public double? FinalLogitSoftcap { get; init; }
    /// <summary>Embedding output scale (Gemma: sqrt(hidden_size)).</summary>
    public double? EmbeddingScale { get; init; }
    /// <summary>lm_head shares the embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>End-of-sequence ids from config.json.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>Padding id from config.json, if any.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>max_position_embeddings: the context length the model was built for (null when unknown).</summary>
    public int? MaxPositionEmbeddings { get; init; }
    /// <summary>The dtype the weights were saved in, if config.json says.</summary>
    public string? SavedDType { get; init; }
}
