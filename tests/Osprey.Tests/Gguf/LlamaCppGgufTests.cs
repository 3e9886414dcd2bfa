using System.Text.Json;
using Osprey.Gguf;
using Osprey.Tests.Cli.Commands;
using TorchSharp;

namespace Osprey.Tests.Gguf;

/// <summary>
/// GGUF files written by <c>osprey export --to_gguf true</c>, run by llama.cpp itself (npm node-llama-cpp, pinned):
/// the f32 export continues each fixture's prompt exactly as transformers does (the fixture's infer_golden.json, made
/// by transformers), f16 and q8_0 agree on the first token, and the k-quant mixes and q4_0/q4_1/q5_0/q5_1 stay close to the f32 file on a model
/// wide enough (rows of 256) for k-quant blocks. All exports run in one llama.cpp process.
/// </summary>
public sealed class LlamaCppGgufTests
{
    // mistral is left out: its fixture's sliding window (5) is shorter than the prompt, and llama.cpp's llama
    // architecture has no sliding window (as with llama.cpp's own converter).
    private static readonly string[] Families = ["llama", "llama3", "qwen2", "qwen3"];

    internal static string Export(string model, string quant, string output)
    {
        var run = CliRun.Of("export", "--model", model, "--to_gguf", "true", "--gguf_quant", quant, "--output_dir", output);
        Assert.True(run.ExitCode == 0, run.ToString());
        return Path.Combine(output, $"{Path.GetFileName(model)}-{quant}.gguf");
    }

    private static (int[] Prompt, int[] NewIds) Golden(string family)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(CliRun.Fixture(family), "infer_golden.json")));
        var c = doc.RootElement.GetProperty("cases")[0];
        int[] Ids(string name) => c.GetProperty(name).EnumerateArray().Select(x => x.GetInt32()).ToArray();
        return (Ids("prompt_ids"), Ids("new_ids"));
    }

    [Fact]
    public void LlamaCpp_RunsTheExports_AsTransformersDoes()
    {
        using var dir = new TempDirectory();
        var jobs = new List<NodeLlamaCpp.Job>();
        var expected = new List<(string What, int[] Ids, int Compare)>();
        foreach (var family in Families)
        {
            var (prompt, newIds) = Golden(family);
            foreach (var quant in family == "llama" ? new[] { "f32", "f16", "q8_0" } : ["f32", "q8_0"])
            {
                var file = Export(CliRun.Fixture(family), quant, dir.Path);
                jobs.Add(new NodeLlamaCpp.Job(file, prompt, quant == "f32" ? newIds.Length : 1, 256));
                expected.Add(($"{family} {quant}", newIds, quant == "f32" ? newIds.Length : 1));
            }
        }
        var wide = WideModel(dir.File("wide"));
        var wideQuants = new[] { "f32", "q4_k_m", "q5_k_m", "q6_k", "q4_0", "q4_1", "q5_0", "q5_1" };
        foreach (var quant in wideQuants) jobs.Add(new NodeLlamaCpp.Job(Export(wide, quant, dir.Path), [1, 17, 42, 99, 5, 7], 1, 256));

        var results = NodeLlamaCpp.Evaluate(jobs);

        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].Ids.Take(expected[i].Compare).SequenceEqual(results[i].Ids),
                $"{expected[i].What}: llama.cpp gave [{string.Join(", ", results[i].Ids)}], transformers [{string.Join(", ", expected[i].Ids.Take(expected[i].Compare))}]");
        var f32 = results[expected.Count].Probs;
        for (int q = 1; q < wideQuants.Length; q++)
        {
            var probs = results[expected.Count + q].Probs;
            // Logits are log-probabilities up to a constant: compare centred log-probabilities.
            var cos = Cosine(Centred(f32), Centred(probs));
            Assert.True(cos >= 0.99, $"{wideQuants[q]}: cosine of first-step logits with the f32 file is {cos:F4}");
        }
    }

    /// <summary>
    /// phi3 (the fixture as is), gemma2 and gemma3_text: llama.cpp hard-codes Gemma's attention scale 1/sqrt(head_dim)
    /// and its sliding-window layer pattern (every 2nd / 6th layer full), which the fixtures' configs do not follow, so
    /// each Gemma fixture is turned into a variant that does (query_pre_attn_scalar = head_dim; Gemma 3 grown to six
    /// layers from its two). Osprey's Gemma code is parity-checked against transformers, so on a variant llama.cpp must
    /// give what <c>osprey infer --input_ids</c> gives; on phi3 it must give transformers' own continuation.
    /// </summary>
    [Fact]
    public void LlamaCpp_RunsPhi3AndGemmaExports_AsOspreyAndTransformersDo()
    {
        using var dir = new TempDirectory();
        var (prompt, phi3Ids) = Golden("phi3");
        var gemma2 = GemmaVariant(CliRun.Fixture("gemma2"), dir.File("gemma2-variant"), layers: 2);
        var gemma3 = GemmaVariant(CliRun.Fixture("gemma3_text"), dir.File("gemma3-variant"), layers: 6);
        var expected = new List<(string What, int[] Ids)> { ("phi3", phi3Ids) };
        foreach (var (what, model) in new[] { ("gemma2 variant", gemma2), ("gemma3_text variant", gemma3) })
        {
            var infer = CliRun.Of("infer", "--model", model, "--device", "cpu", "--input_ids", string.Join(' ', prompt), "--max_new_tokens", "16");
            Assert.True(infer.ExitCode == 0, infer.ToString());
            expected.Add((what, infer.StdoutLines[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).TakeWhile(t => !t.StartsWith('(')).Select(int.Parse).ToArray()));
        }
        var files = new[] { CliRun.Fixture("phi3"), gemma2, gemma3 }.Select(m => Export(m, "f32", dir.Path)).ToArray();
        // The Gemma norms are stored as 1 + w, as llama.cpp multiplies by the stored weight.
        var gemmaFile = GgufFile.Open(files[1]);
        Assert.Equal("gemma2", gemmaFile.RequireString("general.architecture"));
        Assert.Equal(5f, Convert.ToSingle(gemmaFile.Get("gemma2.attn_logit_softcapping")));
        Assert.Equal(4u, Convert.ToUInt32(gemmaFile.Get("gemma2.attention.sliding_window")));
        // A Phi-3 named model whose vocabulary lacks "</s>"/"<s>" carries no general.name (llama.cpp would fail to load it).
        Assert.Null(GgufFile.Open(files[0]).Get("general.name"));

        var results = NodeLlamaCpp.Evaluate(files.Select(f => new NodeLlamaCpp.Job(f, prompt, 16, 256)).ToList());

        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].Ids.SequenceEqual(results[i].Ids),
                $"{expected[i].What}: llama.cpp gave [{string.Join(", ", results[i].Ids)}], expected [{string.Join(", ", expected[i].Ids)}]");
    }

    [Fact]
    public void GemmaExport_RefusesWhatLlamaCppWouldRunDifferently()
    {
        using var dir = new TempDirectory();
        // The fixture as is: query_pre_attn_scalar 24 with head_dim 16.
        var run = CliRun.Of("export", "--model", CliRun.Fixture("gemma2"), "--to_gguf", "true", "--gguf_quant", "f32", "--output_dir", dir.Path);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("query_pre_attn_scalar", run.ToString());
        // The fixture's two layers, sliding then full, with the scale fixed: llama.cpp's gemma3 makes only every sixth layer full.
        var variant = GemmaVariant(CliRun.Fixture("gemma3_text"), dir.File("gemma3-two"), layers: 2);
        var config = Path.Combine(variant, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("""["sliding_attention","sliding_attention"]""", """["sliding_attention","full_attention"]""", StringComparison.Ordinal));
        run = CliRun.Of("export", "--model", variant, "--to_gguf", "true", "--gguf_quant", "f32", "--output_dir", dir.Path);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("layer 1 is full attention", run.ToString());
    }

    /// <summary>
    /// A copy of a Gemma fixture with query_pre_attn_scalar = head_dim and <paramref name="layers"/> layers in
    /// llama.cpp's pattern (the last of each group full); added layers copy the fixture's layers in turn, scaled so
    /// they are not identical.
    /// </summary>
    internal static string GemmaVariant(string fixture, string folder, int layers)
    {
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(fixture).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal) && !f.EndsWith("config.json", StringComparison.Ordinal)))
            File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        var period = config["model_type"]!.GetValue<string>() == "gemma2" ? 2 : 6;
        var sourceLayers = config["num_hidden_layers"]!.GetValue<int>();
        config["query_pre_attn_scalar"] = config["head_dim"]!.GetValue<int>();
        config["num_hidden_layers"] = layers;
        config["layer_types"] = new System.Text.Json.Nodes.JsonArray(Enumerable.Range(0, layers)
            .Select(i => (System.Text.Json.Nodes.JsonNode?)((i + 1) % period == 0 ? "full_attention" : "sliding_attention")).ToArray());
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        using var source = Osprey.Io.SafetensorsCheckpoint.Open(fixture);
        var tensors = new List<KeyValuePair<string, torch.Tensor>>();
        foreach (var name in source.Names)
        {
            var m = System.Text.RegularExpressions.Regex.Match(name, @"^model\.layers\.(\d+)\.(.+)$");
            if (!m.Success) { tensors.Add(new(name, source.ReadTensor(name))); continue; }
            var from = int.Parse(m.Groups[1].Value);
            for (int i = from; i < layers; i += sourceLayers)
                tensors.Add(new($"model.layers.{i}.{m.Groups[2].Value}", source.ReadTensor(name) * (1f - 0.05f * (i / sourceLayers))));
        }
        Osprey.Io.SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
        foreach (var (_, t) in tensors) t.Dispose();
        return folder;
    }

    [Fact]
    public void KQuantMix_FollowsLlamaCppsRuleOfThumb_AndReadsBack()
    {
        using var dir = new TempDirectory();
        var wide = WideModel(dir.File("wide"));
        var file = GgufFile.Open(Export(wide, "q4_k_m", dir.Path));
        var types = file.Tensors.ToDictionary(t => t.Name, t => t.Type);
        // 8 layers: layers 0 and 7 (first and last eighth) and 3 and 6 ((i − 1) % 3 == 2) get q6_K for attn_v/ffn_down.
        foreach (var layer in Enumerable.Range(0, 8))
        {
            var more = layer is 0 or 3 or 6 or 7;
            Assert.Equal(more ? GgmlType.Q6_K : GgmlType.Q4_K, types[$"blk.{layer}.attn_v.weight"]);
            Assert.Equal(more ? GgmlType.Q6_K : GgmlType.Q4_K, types[$"blk.{layer}.ffn_down.weight"]);
            Assert.Equal(GgmlType.Q4_K, types[$"blk.{layer}.attn_q.weight"]);
            Assert.Equal(GgmlType.F32, types[$"blk.{layer}.attn_norm.weight"]);
        }
        Assert.Equal(GgmlType.Q6_K, types["output.weight"]);
        Assert.Equal(GgmlType.Q4_K, types["token_embd.weight"]);
        // The reader dequantizes back close to the source weights (the embedding is not permuted).
        using var source = Osprey.Io.SafetensorsCheckpoint.Open(wide);
        using var embed = source.ReadTensor("model.embed_tokens.weight");
        var original = embed.data<float>().ToArray();
        var decoded = file.ReadFloats(file.Tensor("token_embd.weight"));
        Assert.Equal(original.Length, decoded.Length);
        Assert.True(Cosine(original.Select(v => (double)v).ToArray(), decoded.Select(v => (double)v).ToArray()) > 0.99);
        Assert.Equal("llama", file.RequireString("general.architecture"));
        Assert.Equal("llama", file.RequireString("tokenizer.ggml.model"));
        Assert.Equal(256, ((GgufArray)file.Get("tokenizer.ggml.tokens")!).Items.Count);
        Assert.Contains("<|im_start|>", file.RequireString("tokenizer.chat_template"));
    }

    /// <summary>A random llama of 8 layers with rows of 256 (so k-quant blocks fit), the llama fixture's tokenizer.</summary>
    private static string WideModel(string folder)
    {
        Directory.CreateDirectory(folder);
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json", "chat_template.jinja" })
            File.Copy(Path.Combine(CliRun.Fixture("llama"), f), Path.Combine(folder, f));
        const int hidden = 256, ffn = 512, layers = 8, vocab = 256, heads = 4, kv = 2, headDim = 64;
        File.WriteAllText(Path.Combine(folder, "config.json"), $$"""
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": {{hidden}}, "intermediate_size": {{ffn}},
             "num_hidden_layers": {{layers}}, "num_attention_heads": {{heads}}, "num_key_value_heads": {{kv}}, "vocab_size": {{vocab}},
             "rms_norm_eps": 1e-6, "max_position_embeddings": 256, "rope_theta": 10000.0, "tie_word_embeddings": false,
             "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
            """);
        var generator = new torch.Generator(7);
        // Small layer weights keep the residual stream dominant, as in a trained model; with large random weights every
        // layer amplifies rounding noise and no quantization stays close.
        torch.Tensor R(long rows, long cols, float scale = 0.02f) => torch.randn([rows, cols], generator: generator) * scale;
        var t = new List<KeyValuePair<string, torch.Tensor>>
        {
            new("model.embed_tokens.weight", R(vocab, hidden, 1f)),
            new("model.norm.weight", torch.ones(hidden)),
            new("lm_head.weight", R(vocab, hidden, 0.1f)),
        };
        for (int i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}.";
            t.Add(new(p + "input_layernorm.weight", torch.ones(hidden)));
            t.Add(new(p + "post_attention_layernorm.weight", torch.ones(hidden)));
            t.Add(new(p + "self_attn.q_proj.weight", R(heads * headDim, hidden)));
            t.Add(new(p + "self_attn.k_proj.weight", R(kv * headDim, hidden)));
            t.Add(new(p + "self_attn.v_proj.weight", R(kv * headDim, hidden)));
            t.Add(new(p + "self_attn.o_proj.weight", R(hidden, heads * headDim)));
            t.Add(new(p + "mlp.gate_proj.weight", R(ffn, hidden)));
            t.Add(new(p + "mlp.up_proj.weight", R(ffn, hidden)));
            t.Add(new(p + "mlp.down_proj.weight", R(hidden, ffn)));
        }
        Osprey.Io.SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), t);
        foreach (var (_, tensor) in t) tensor.Dispose();
        return folder;
    }

    private static double[] Centred(double[] probs)
    {
        var logs = probs.Select(p => Math.Log(Math.Max(p, 1e-30))).ToArray();
        var mean = logs.Average();
        return logs.Select(l => l - mean).ToArray();
    }

    private static double Cosine(double[] a, double[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}
