namespace Osprey.Models;

/// <summary>
/// How a decoder splits over <see cref="WorldSize"/> tensor-parallel ranks (Megatron's column/row split, as vLLM does
/// it): q/k/v by heads and gate/up by intermediate columns (column-parallel: each rank computes its heads' attention
/// and its columns' activations alone), o_proj and down_proj by their input columns (row-parallel: each rank's product
/// is a partial sum, all-reduced after the layer). Embeddings, norms and lm_head are whole on every rank. Rank r holds
/// query heads [r·H/N, (r+1)·H/N) and KV heads [r·K/N, (r+1)·K/N), so each rank's query heads read only its own KV
/// heads (grouped-query attention keeps its groups), which is why N must divide the KV head count.
/// </summary>
public sealed record TensorParallelShard(int Rank, int WorldSize)
{
    /// <summary>
    /// Refuses a model that does not split into <paramref name="worldSize"/> ranks: a head count or the intermediate
    /// size that N does not divide. <paramref name="configFile"/> is named in the message.
    /// </summary>
    /// <exception cref="OspreyException">N does not divide num_key_value_heads, num_attention_heads or intermediate_size.</exception>
    public static void Check(DecoderSpec spec, int worldSize, string configFile)
    {
        string Fix(int n) => $"use a --tensor_parallel_size that divides {n} ({string.Join(", ", Enumerable.Range(1, n).Where(d => n % d == 0))})";
        if (spec.NumKvHeads % worldSize != 0)
            throw new OspreyException($"{configFile}: num_key_value_heads is {spec.NumKvHeads}, which --tensor_parallel_size {worldSize} does not divide (each rank holds whole KV heads); {Fix(spec.NumKvHeads)}.");
        if (spec.NumHeads % worldSize != 0)
            throw new OspreyException($"{configFile}: num_attention_heads is {spec.NumHeads}, which --tensor_parallel_size {worldSize} does not divide; {Fix(spec.NumHeads)}.");
        if (spec.IntermediateSize % worldSize != 0)
            throw new OspreyException($"{configFile}: intermediate_size is {spec.IntermediateSize}, which --tensor_parallel_size {worldSize} does not divide; {Fix(spec.IntermediateSize)}.");
    }

    /// <summary>
    /// <see cref="Check(DecoderSpec, int, string)"/> for the model folder <paramref name="directory"/>, before any worker
    /// starts: a model that cannot split is refused at once.
    /// </summary>
    /// <exception cref="OspreyException">The folder's config.json does not split into <paramref name="worldSize"/> ranks.</exception>
    public static void CheckFolder(string directory, int worldSize) =>
        Check(ModelRegistry.ReadSpec(directory), worldSize, Path.Combine(directory, "config.json"));

    /// <summary>The shape one rank's layers have: a 1/N of the heads and of the MLP width (the model is built from it).</summary>
    public DecoderSpec ShardSpec(DecoderSpec spec) => spec with
    {
        NumHeads = spec.NumHeads / WorldSize,
        NumKvHeads = spec.NumKvHeads / WorldSize,
        IntermediateSize = spec.IntermediateSize / WorldSize,
    };

    /// <summary>
    /// The part of checkpoint tensor <paramref name="name"/> (a Hugging Face key) this rank holds for the whole model
    /// <paramref name="spec"/>, or null when every rank holds it whole.
    /// </summary>
    public ShardSlice? SliceOf(string name, DecoderSpec spec)
    {
        long d = spec.HeadDim, q = spec.NumHeads * d, kv = spec.NumKvHeads * d, i = spec.IntermediateSize;
        long qs = q / WorldSize, kvs = kv / WorldSize, s = i / WorldSize;
        var dot = name.LastIndexOf('.');
        if (dot < 0) return null;
        var (module, tensor) = (name[..dot], name[(dot + 1)..]);
        if (tensor is not ("weight" or "bias")) return null;
        var weight = tensor == "weight";
        ShardSlice Rows(params (long, long)[] ranges) => new(0, ranges);
        return module switch
        {
            _ when module.EndsWith(".self_attn.q_proj", StringComparison.Ordinal) => Rows((Rank * qs, qs)),
            _ when module.EndsWith(".self_attn.k_proj", StringComparison.Ordinal) || module.EndsWith(".self_attn.v_proj", StringComparison.Ordinal) => Rows((Rank * kvs, kvs)),
            _ when module.EndsWith(".self_attn.qkv_proj", StringComparison.Ordinal) => Rows((Rank * qs, qs), (q + Rank * kvs, kvs), (q + kv + Rank * kvs, kvs)),
            _ when module.EndsWith(".self_attn.o_proj", StringComparison.Ordinal) => weight ? new ShardSlice(1, [(Rank * qs, qs)]) : new ShardSlice(0, [], RootOnly: true),
            _ when module.EndsWith(".mlp.gate_proj", StringComparison.Ordinal) || module.EndsWith(".mlp.up_proj", StringComparison.Ordinal) => Rows((Rank * s, s)),
            _ when module.EndsWith(".mlp.gate_up_proj", StringComparison.Ordinal) => Rows((Rank * s, s), (i + Rank * s, s)),
            _ when module.EndsWith(".mlp.down_proj", StringComparison.Ordinal) => weight ? new ShardSlice(1, [(Rank * s, s)]) : new ShardSlice(0, [], RootOnly: true),
            _ => null,
        };
    }
}
