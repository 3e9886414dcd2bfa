using Osprey.Images;
using Osprey.Io;
using Osprey.Models.Qwen2Vl;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// Properties of the Qwen2-VL / Qwen2.5-VL implementation that need no reference model (transformers parity lives in
/// VisionLanguageParityTests): a random model saved in the hub layout and in transformers 5's nested layout loads
/// strictly, and greedy decoding with the KV cache, whose positions come from the M-RoPE delta, picks the same
/// tokens as re-running the whole sequence, whose positions come from get_rope_index's rule for text after an image.
/// </summary>
public sealed class VisionLanguageModelTests
{
    static void WriteConfig(string dir, string type)
    {
        var vision = type == "qwen2_vl"
            ? """{"depth": 2, "embed_dim": 16, "hidden_size": 32, "mlp_ratio": 2, "num_heads": 2, "hidden_act": "quick_gelu", "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}"""
            : """{"depth": 2, "hidden_size": 16, "out_hidden_size": 32, "intermediate_size": 24, "num_heads": 2, "hidden_act": "silu", "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1]}""";
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""
            {"model_type": "{{type}}", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
             "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "tie_word_embeddings": {{(type == "qwen2_vl" ? "true" : "false")}},
             "eos_token_id": 63, "image_token_id": 60, "vision_start_token_id": 58, "vision_end_token_id": 59,
             "vision_config": {{vision}}}
            """);
    }

    static ImagePatches RandomImage(int gh, int gw, int seed)
    {
        var rng = new Random(seed);
        var v = new float[gh * gw * 1176];
        for (var i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 4 - 2);
        return new ImagePatches(v, 1, gh, gw, 1176);
    }

    [Theory]
    [InlineData("qwen2_vl", false)]
    [InlineData("qwen2_5_vl", true)]
    public void CachedGreedy_EqualsFullRecompute(string type, bool nestedLayout)
    {
        using var dir = new TempDirectory();
        WriteConfig(dir.Path, type);
        manual_seed(7);
        using (var fresh = Qwen2VlModel.Create(dir.Path, CPU, ScalarType.Float32))
        {
            using var _ = no_grad();
            foreach (var p in fresh.parameters()) p.normal_(0, 0.3);
            var tensors = fresh.state_dict()
                .Where(kv => !(type == "qwen2_vl" && kv.Key == "lm_head.weight"))
                .Select(kv => new KeyValuePair<string, Tensor>(
                    !nestedLayout ? kv.Key
                    : kv.Key.StartsWith("visual.", StringComparison.Ordinal) ? "model." + kv.Key
                    : kv.Key.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + kv.Key["model.".Length..]
                    : kv.Key, kv.Value));
            SafetensorsWriter.Write(dir.File("model.safetensors"), tensors);
        }
        using var model = Qwen2VlModel.Load(dir.Path, CPU, ScalarType.Float32);
        // Two images: 4x6 patches (6 tokens, split into two windows in Qwen2.5-VL) and 2x4 (2 tokens).
        var images = new List<ImagePatches> { RandomImage(4, 6, 1), RandomImage(2, 4, 2) };
        var prompt = new List<int> { 5, 6, 58 };
        prompt.AddRange(Enumerable.Repeat(60, 6));
        prompt.AddRange([59, 7, 58, 60, 60, 59, 8, 9]);
        var cached = model.GenerateGreedy(prompt, images, 8, stopIds: []);
        var ids = new List<int>(prompt);
        using var __ = no_grad();
        for (var step = 0; step < cached.Count; step++)
        {
            using var t = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count], dtype: ScalarType.Int64);
            using var logits = model.Forward(t, images);
            var next = (int)logits[0, -1].argmax().item<long>();
            Assert.Equal(next, cached[step]);
            ids.Add(next);
        }
        Assert.Equal(8, cached.Count);
    }

    [Fact]
    public void PlaceholderCountMismatch_IsAnError()
    {
        using var dir = new TempDirectory();
        WriteConfig(dir.Path, "qwen2_vl");
        using var model = Qwen2VlModel.Create(dir.Path, CPU, ScalarType.Float32);
        using var ids = tensor(new long[] { 58, 60, 60, 59 }, [1, 4], dtype: ScalarType.Int64);
        var ex = Assert.Throws<OspreyException>(() => model.Forward(ids, [RandomImage(4, 6, 1)]));
        Assert.Contains("image", ex.Message);
    }
}
