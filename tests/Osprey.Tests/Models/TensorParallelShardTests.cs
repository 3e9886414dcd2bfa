using Osprey.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// The tensor-parallel split of each projection, against slices worked out by hand for a GQA model of 8 query heads,
/// 2 KV heads, head_dim 4 (q 32 rows, k/v 8 rows) and an MLP width of 12, over 2 ranks: rank r holds query rows
/// [16r, 16r + 16), key/value rows [4r, 4r + 4), MLP rows [6r, 6r + 6), and the same ranges as input columns of o_proj
/// and down_proj.
/// </summary>
public sealed class TensorParallelShardTests
{
    static readonly DecoderSpec Gqa = new()
    {
        ModelType = "llama", VocabSize = 10, HiddenSize = 16, IntermediateSize = 12, NumHeads = 8, NumKvHeads = 2, HeadDim = 4,
        RmsNormEps = 1e-6, Layers = [],
    };

    /// <summary>The slice as "dim D: [start, end) ..." (or "root only", or null when whole).</summary>
    static string? Of(int rank, string name)
    {
        var s = new TensorParallelShard(rank, 2).SliceOf(name, Gqa);
        if (s is null) return null;
        return s.RootOnly ? "root only" : $"dim {s.Dim}: " + string.Join(" ", s.Ranges.Select(r => $"[{r.Start}, {r.Start + r.Length})"));
    }

    [Fact]
    public void ColumnParallelProjectionsSplitByHeadsAndColumns()
    {
        Assert.Equal("dim 0: [0, 16)", Of(0, "model.layers.0.self_attn.q_proj.weight"));
        Assert.Equal("dim 0: [16, 32)", Of(1, "model.layers.3.self_attn.q_proj.weight"));
        Assert.Equal("dim 0: [16, 32)", Of(1, "model.layers.3.self_attn.q_proj.bias"));
        Assert.Equal("dim 0: [0, 4)", Of(0, "model.layers.0.self_attn.k_proj.weight"));
        Assert.Equal("dim 0: [4, 8)", Of(1, "model.layers.0.self_attn.v_proj.bias"));
        Assert.Equal("dim 0: [6, 12)", Of(1, "model.layers.0.mlp.gate_proj.weight"));
        Assert.Equal("dim 0: [0, 6)", Of(0, "model.layers.0.mlp.up_proj.weight"));
    }

    [Fact]
    public void FusedProjectionsTakeTheirRanksSliceOfEachPart()
    {
        // qkv_proj rows: q [0, 32), k [32, 40), v [40, 48).
        Assert.Equal("dim 0: [0, 16) [32, 36) [40, 44)", Of(0, "model.layers.1.self_attn.qkv_proj.weight"));
        Assert.Equal("dim 0: [16, 32) [36, 40) [44, 48)", Of(1, "model.layers.1.self_attn.qkv_proj.weight"));
        // gate_up_proj rows: gate [0, 12), up [12, 24).
        Assert.Equal("dim 0: [6, 12) [18, 24)", Of(1, "model.layers.1.mlp.gate_up_proj.weight"));
    }

    [Fact]
    public void RowParallelProjectionsSplitTheirInputColumns_AndTheirBiasIsAddedOnce()
    {
        Assert.Equal("dim 1: [16, 32)", Of(1, "model.layers.0.self_attn.o_proj.weight"));
        Assert.Equal("dim 1: [0, 6)", Of(0, "model.layers.0.mlp.down_proj.weight"));
        Assert.Equal("root only", Of(1, "model.layers.0.self_attn.o_proj.bias"));
        Assert.Equal("root only", Of(0, "model.layers.0.mlp.down_proj.bias"));
    }

    [Fact]
    public void EmbeddingsNormsAndTheHeadAreWholeOnEveryRank()
    {
        foreach (var name in new[] { "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.0.input_layernorm.weight",
                     "model.layers.0.self_attn.q_norm.weight", "model.layers.0.post_attention_layernorm.weight" })
            Assert.Null(Of(1, name));
    }

    [Fact]
    public void EachRanksQueryHeadsReadOnlyItsOwnKvHeads()
    {
        // GQA: query head h reads KV head h / (8 / 2). Rank r's query rows [16r, 16r + 16) are heads [4r, 4r + 4), its KV
        // rows [4r, 4r + 4) are KV head r: the heads a rank holds need no other rank's keys.
        for (var rank = 0; rank < 2; rank++)
        {
            var shard = new TensorParallelShard(rank, 2);
            var q = shard.SliceOf("model.layers.0.self_attn.q_proj.weight", Gqa)!.Ranges.Single();
            var kv = shard.SliceOf("model.layers.0.self_attn.k_proj.weight", Gqa)!.Ranges.Single();
            for (var head = q.Start / 4; head < (q.Start + q.Length) / 4; head++)
            {
                var kvHead = head / 4;
                Assert.InRange(kvHead, kv.Start / 4, (kv.Start + kv.Length) / 4 - 1);
            }
        }
    }

    [Fact]
    public void ShardSpecHoldsAnNthOfTheHeadsAndTheMlpWidth()
    {
        var s = new TensorParallelShard(1, 2).ShardSpec(Gqa);
        Assert.Equal((4, 1, 6, 4, 16), (s.NumHeads, s.NumKvHeads, s.IntermediateSize, s.HeadDim, s.HiddenSize));
    }

    [Fact]
    public void TakeCopiesTheRowsOrColumnsOfEachRange()
    {
        // A fused [q0 q1 k0 k1 v0 v1] of one row each (2 heads, 2 KV heads, head_dim 1): rank 1 holds q1, k1, v1.
        var tiny = Gqa with { NumHeads = 2, NumKvHeads = 2, HeadDim = 1, IntermediateSize = 2 };
        using var qkv = arange(6, dtype: ScalarType.Float32).view(6, 1);
        using var part = new TensorParallelShard(1, 2).SliceOf("model.layers.0.self_attn.qkv_proj.weight", tiny)!.Take(qkv, 1);
        Assert.Equal(new float[] { 1, 3, 5 }, part.data<float>().ToArray());
        // o_proj [hidden 2, q 2]: rank 0 holds column 0.
        using var o = tensor(new float[] { 1, 2, 3, 4 }, [2, 2]);
        using var col = new TensorParallelShard(0, 2).SliceOf("model.layers.0.self_attn.o_proj.weight", tiny)!.Take(o, 0);
        Assert.Equal(new float[] { 1, 3 }, col.data<float>().ToArray());
        using var bias = tensor(new float[] { 5, 6 });
        var rootOnly = new TensorParallelShard(1, 2).SliceOf("model.layers.0.self_attn.o_proj.bias", tiny)!;
        using (var zero = rootOnly.Take(bias, 1)) Assert.Equal(new float[] { 0, 0 }, zero.data<float>().ToArray());
        using (var whole = rootOnly.Take(bias, 0)) Assert.Equal(new float[] { 5, 6 }, whole.data<float>().ToArray());
    }

    [Fact]
    public void ASizeThatDoesNotDivideTheKvHeadsIsRefusedNamingTheFieldAndTheFix()
    {
        var e = Assert.Throws<OspreyException>(() => TensorParallelShard.Check(Gqa, 4, "m/config.json"));
        Assert.Equal("m/config.json: num_key_value_heads is 2, which --tensor_parallel_size 4 does not divide (each rank holds whole KV heads); use a --tensor_parallel_size that divides 2 (1, 2).", e.Message);
        var mlp = Assert.Throws<OspreyException>(() => TensorParallelShard.Check(Gqa with { IntermediateSize = 13 }, 2, "m/config.json"));
        Assert.Contains("intermediate_size is 13", mlp.Message);
        TensorParallelShard.Check(Gqa, 2, "m/config.json");
    }
}
