using Osprey.Models;
using Osprey.Training;
using Osprey.Training.MemoryFit;

namespace Osprey.Tests.Training.MemoryFit;

/// <summary>
/// The component formulas of docs/memory.md, each expected value worked out by hand in the comments from a small
/// Qwen2 config (hidden 64, intermediate 128, 2 layers, 4 heads, 2 KV heads of 16, vocabulary 1000, untied, bf16).
/// </summary>
public sealed class MemoryEstimateTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    internal static DecoderSpec Spec(TempDirectory dir, string json)
    {
        File.WriteAllText(dir.File("config.json"), json);
        return ModelRegistry.ReadSpec(dir.Path);
    }

    internal const string Small = """
        {"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
         "num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"vocab_size":1000,"max_position_embeddings":512,
         "tie_word_embeddings":false,"torch_dtype":"bfloat16","hidden_act":"silu"}
        """;

    // Per layer: q 64·64 + k 64·32 + v 64·32 + o 64·64 + gate/up/down 3·64·128 = 4096+2048+2048+4096+24576 = 36864.
    // Dense: embed 64000 + lm_head 64000 + final norm 64 + 2 layers × (qkv bias 128 + two norms 128) = 128576.
    private const long Linear = 36864, Dense = 128576;

    private static readonly MemoryPlan Lora = new()
    {
        TrainType = TrainType.Lora, LoraRank = 4, BatchSize = 2, MaxLength = 32, GradientCheckpointing = true, LoraDropout = 0.05, DTypeBytes = 2,
    };

    [Fact]
    public void Lora_Bf16_WithCheckpointing_MatchesHandComputedComponents()
    {
        var e = MemoryEstimate.Compute(Spec(_dir, Small), Lora);
        Assert.Equal((Dense + 2 * Linear) * 2, e.Weights); // 404608
        // r·(in+out) per layer: 4·(128+96+96+128+192+192+192) = 4096; two layers 8192 parameters.
        Assert.Equal(8192, e.TrainableParameters);
        Assert.Equal(8192 * 2, e.Adapters);
        Assert.Equal(8192 * 2, e.Gradients);
        Assert.Equal(8192 * 12, e.OptimizerState); // fp32 master + m + v
        Assert.Equal(8192 * 6, e.StepWorkspace);   // bf16 concatenation + fp32 flat
        // 64 tokens; layer inputs of 2 layers + the final one: 3·64·64·2.
        Assert.Equal(3 * 64 * 64 * 2, e.KeptActivations);
        // Per token: norms 2·(4·64+4) = 520, LSE 4·4 = 16, bf16 2·(2·64 + 5·64 + 4·128) = 1920 → 2456;
        // LoRA dropout: inputs 5·64 + 64 + 128 = 512 at 3 bytes = 1536, A outputs 7·2·4 = 56 → 4048 per token.
        // Backward buffers: 64·2·(3·128 + 2·64) = 65536.
        Assert.Equal(64 * 4048 + 65536, e.LayerRecompute);
        // 64 rows (fewer than a chunk) × 1000 × (2·2 + 12) + 64·64·(4 + 2·2).
        Assert.Equal(64 * 1000 * 16 + 64 * 64 * 8, e.LossChunk);
        // kept + loss chunk + recompute (the allocator keeps the loss chunk's blocks reserved through the recompute).
        Assert.Equal(512L * 1024 * 1024 + 404608 + 16384 + 16384 + 98304 + (24576 + 1056768 + 64 * 4048 + 65536), e.Peak);
    }

    [Fact]
    public void QuantizedBases_StorePackedLinears()
    {
        var spec = Spec(_dir, Small);
        // NF4 + double quant: 36864/2 = 18432 bytes of codes, 576 uint8 absmax codes, ⌈576/256⌉ = 3 float32 → 19020.
        Assert.Equal(Dense * 2 + 2 * 19020, MemoryEstimate.Compute(spec, Lora with { QuantBits = 4 }).Weights);
        // Without double quant: 18432 + 576 float32 absmax = 20736.
        Assert.Equal(Dense * 2 + 2 * 20736, MemoryEstimate.Compute(spec, Lora with { QuantBits = 4, DoubleQuant = false }).Weights);
        // LLM.int8: one byte each + a float32 per output row (64+32+32+64+128+128+64 = 512 rows).
        Assert.Equal(Dense * 2 + 2 * (36864 + 4 * 512), MemoryEstimate.Compute(spec, Lora with { QuantBits = 8 }).Weights);
        // The recompute builds one dense bf16 weight at a time (the largest, gate/up/down: 64·128·2 = 16384) and TorchSharp
        // mirrors each quantized linear's output: 64 tokens × 512 output features × 2 = 65536.
        Assert.Equal(64 * 4048 + 65536 + 16384 + 65536, MemoryEstimate.Compute(spec, Lora with { QuantBits = 4 }).LayerRecompute);
    }

    [Fact]
    public void ShardedOverRanks_DividesTheOptimizerStateAndUnderZero3TheLayers()
    {
        var four = Small.Replace("\"num_hidden_layers\":2", "\"num_hidden_layers\":4", StringComparison.Ordinal);
        var spec = Spec(_dir, four);
        var full = Lora with { TrainType = TrainType.Full, WorldSize = 4 };
        // 4 layers: dense 64000 + 64000 + 64 + 4·256 = 129088; all = 129088 + 4·36864 = 276544 parameters.
        const long all = 276544;
        var dp = MemoryEstimate.Compute(spec, full);
        Assert.Equal(all * 12, dp.OptimizerState); // data parallel: every rank holds everything
        var zero2 = MemoryEstimate.Compute(spec, full with { ZeroStage = ZeroStage.Zero2 });
        Assert.Equal(all * 12 / 4, zero2.OptimizerState); // 829632
        Assert.Equal(all * 2, zero2.Gradients);
        Assert.Equal(0, MemoryEstimate.Compute(spec, full with { ZeroStage = ZeroStage.Zero2, OffloadOptimizer = true }).OptimizerState);
        // ZeRO-3: a layer is 36864 + 128 bias + 128 norm = 37120 parameters; 2 of the 4 are whole at a time, so
        // weights lose 2·37120·2 bytes; gradients are the dense ones and 2 layers in bf16 plus a quarter of the
        // 4 layers' in float32: (129088 + 2·37120)·2 + 4·37120 = 553088.
        var zero3 = MemoryEstimate.Compute(spec, full with { ZeroStage = ZeroStage.Zero3 });
        Assert.Equal(all * 2 - 2 * 37120 * 2, zero3.Weights);
        Assert.Equal(553088, zero3.Gradients);
        Assert.Equal(all * 12 / 4, zero3.OptimizerState);
    }

    [Fact]
    public void Full_WithoutCheckpointing_KeepsEveryLayer()
    {
        var e = MemoryEstimate.Compute(Spec(_dir, Small), Lora with { TrainType = TrainType.Full, GradientCheckpointing = false });
        const long all = Dense + 2 * Linear; // 202304
        Assert.Equal(all, e.TrainableParameters);
        Assert.Equal(0, e.Adapters);
        Assert.Equal(all * 2, e.Gradients);
        Assert.Equal(all * 12, e.OptimizerState);
        // Two layers × 64 tokens × 2456 (no adapters) + the final hidden states 64·64·2.
        Assert.Equal(2 * 64 * 2456 + 64 * 64 * 2, e.KeptActivations);
        Assert.Equal(65536, e.LayerRecompute);
        Assert.Equal(512L * 1024 * 1024 + all * 2 + all * 2 + all * 12 + (322560 + 1056768 + 65536), e.Peak);
    }

    [Fact]
    public void SevenBQwen2_TrainableCountMatchesPeft()
    {
        // PEFT prints "trainable params: 20,185,088" for Qwen2-7B with r=8 on all linear layers:
        // 8 · 28 · ((3584+3584) + 2·(3584+512) + (3584+3584) + 3·(3584+18944)).
        var e = MemoryEstimate.Compute(Spec(_dir, SevenB), new MemoryPlan { LoraRank = 8, MaxLength = 2048 });
        Assert.Equal(20_185_088, e.TrainableParameters);
        // Qwen2's logits chunk: ⌊2^28 / (4·152064)⌋ = 441 rows.
        Assert.Equal(441L * 152064 * 16 + 2048L * 3584 * 8, e.LossChunk);
    }

    internal const string SevenB = """
        {"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,
         "num_attention_heads":28,"num_key_value_heads":4,"vocab_size":152064,"max_position_embeddings":32768,"rms_norm_eps":1e-6,
         "tie_word_embeddings":false,"torch_dtype":"bfloat16","hidden_act":"silu","rope_theta":1000000.0}
        """;
}
