using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;

namespace Osprey.Gguf;

/// <summary>
/// Turns a GGUF file into a Hugging Face folder (config.json, model.safetensors in float32 with every tensor
/// dequantized, tokenizer.json, tokenizer_config.json with the chat template) that every <c>--model</c> loads, so a
/// llama.cpp or LLamaSharp user can run, serve and fine-tune the file they have. The folder is made once per file
/// (keyed by its path, size and time) under the cache folder and reused.
/// </summary>
public static class GgufImport
{
    static readonly Dictionary<string, string> s_modelTypes = new(StringComparer.Ordinal)
    {
        ["llama"] = "llama",
        ["qwen2"] = "qwen2",
        ["qwen3"] = "qwen3",
        ["phi3"] = "phi3",
        ["gemma2"] = "gemma2",
        ["gemma3"] = "gemma3_text",
    };

    /// <summary>Whether <c>--model</c> names a GGUF file.</summary>
    public static bool IsGgufFile(string model) => model.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) && File.Exists(model);

    /// <summary>The converted folder of <paramref name="path"/> in the cache, converting on first use.</summary>
    public static string CachedFolder(string path, TextWriter? log = null)
    {
        var info = new FileInfo(path);
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}")))[..16];
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = string.IsNullOrEmpty(xdg) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache") : xdg;
        var folder = Path.Combine(root, "osprey", "gguf", $"{Path.GetFileNameWithoutExtension(path)}-{key}");
        if (File.Exists(Path.Combine(folder, "model.safetensors"))) return folder;
        log?.WriteLine($"osprey: converting {path} to a model folder in {folder} (once)");
        var tmp = folder + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            ToFolder(path, tmp);
            try { Directory.Move(tmp, folder); }
            catch (IOException) when (File.Exists(Path.Combine(folder, "model.safetensors"))) { }
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
        return folder;
    }

    /// <summary>Writes the Hugging Face folder of GGUF file <paramref name="path"/> into <paramref name="folder"/>.</summary>
    public static void ToFolder(string path, string folder)
    {
        var file = GgufFile.Open(path);
        var arch = file.RequireString("general.architecture");
        if (!s_modelTypes.TryGetValue(arch, out var modelType))
            throw new OspreyException($"{path}: architecture '{arch}' is not one Osprey loads from GGUF yet ({string.Join(", ", s_modelTypes.Keys)}).");
        uint U(string key) => Convert.ToUInt32(file.Get($"{arch}.{key}") ?? throw new OspreyException($"{path} lacks metadata '{arch}.{key}'; the file is incomplete."));
        var hidden = U("embedding_length");
        var heads = U("attention.head_count");
        var kvHeads = file.Get($"{arch}.attention.head_count_kv") is { } kv ? Convert.ToUInt32(kv) : heads;
        var headDim = file.Get($"{arch}.attention.key_length") is { } kl ? Convert.ToUInt32(kl) : hidden / heads;
        var layers = U("block_count");
        var tied = !file.Tensors.Any(t => t.Name == "output.weight");
        var vocab = file.Tensor("token_embd.weight").Dims[1];
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(modelType switch
            {
                "qwen2" => "Qwen2ForCausalLM", "qwen3" => "Qwen3ForCausalLM", "phi3" => "Phi3ForCausalLM",
                "gemma2" => "Gemma2ForCausalLM", "gemma3_text" => "Gemma3ForCausalLM", _ => "LlamaForCausalLM",
            }),
            ["model_type"] = modelType,
            ["vocab_size"] = vocab,
            ["hidden_size"] = hidden,
            ["intermediate_size"] = U("feed_forward_length"),
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = kvHeads,
            ["head_dim"] = headDim,
            ["rms_norm_eps"] = Convert.ToDouble(file.Get($"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-6f),
            ["max_position_embeddings"] = U("context_length"),
            ["rope_theta"] = Convert.ToDouble(file.Get($"{arch}.rope.freq_base") ?? 10000f),
            ["tie_word_embeddings"] = tied,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = "float32",
        };
        if (modelType == "llama")
        {
            config["attention_bias"] = file.Tensors.Any(t => t.Name == "blk.0.attn_q.bias");
            config["mlp_bias"] = file.Tensors.Any(t => t.Name == "blk.0.ffn_gate.bias");
        }
        var gemma = modelType.StartsWith("gemma", StringComparison.Ordinal);
        if (gemma) AddGemma(config, file, arch, path, (int)layers, hidden, heads, headDim);
        if (modelType == "phi3" && file.Get($"{arch}.rope.dimension_count") is { } rotary)
            config["partial_rotary_factor"] = Convert.ToDouble(rotary) / headDim;
        if (file.Tensors.FirstOrDefault(t => t.Name == "rope_freqs.weight") is { } freqs)
            config["rope_scaling"] = Llama3Scaling(file.ReadFloats(freqs), Convert.ToDouble(file.Get($"{arch}.rope.freq_base") ?? 10000f), (int)headDim, path);
        if (file.Get($"{arch}.rope.scaling.type") is string scaling)
        {
            if (scaling != "linear") throw new OspreyException($"{path}: rope scaling '{scaling}' is not one Osprey loads from GGUF yet (linear is).");
            config["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = Convert.ToDouble(file.Get($"{arch}.rope.scaling.factor")) };
        }
        foreach (var (key, name) in new[] { ("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id"), ("tokenizer.ggml.padding_token_id", "pad_token_id") })
            if (file.Get(key) is { } id) config[name] = Convert.ToInt32(id);

        Directory.CreateDirectory(folder);
        var tensors = new List<KeyValuePair<string, torch.Tensor>>();
        try
        {
            foreach (var t in file.Tensors)
            {
                if (t.Name == "rope_freqs.weight") continue; // became rope_scaling above
                var hfName = HfName(t.Name, path, gemma, modelType == "phi3");
                var values = file.ReadFloats(t);
                // llama.cpp's Gemma norms hold 1 + w (see GgufExport).
                if (gemma && t.Name.EndsWith("norm.weight", StringComparison.Ordinal))
                    for (int i = 0; i < values.Length; i++) values[i] -= 1f;
                if (modelType == "llama" && (t.Name.Contains(".attn_q.", StringComparison.Ordinal) || t.Name.Contains(".attn_k.", StringComparison.Ordinal)))
                    values = GgufExport.PermuteRotary(values, t.TorchShape[0], (int)(t.Name.Contains(".attn_q.", StringComparison.Ordinal) ? heads : kvHeads), inverse: true);
                tensors.Add(new(hfName, torch.tensor(values, t.TorchShape)));
            }
            Io.SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        GgufTokenizerJson.Write(file, folder);
    }

    /// <summary>
    /// The config.json fields llama.cpp's gemma2/gemma3 take from the file or fix: the attention scale it uses
    /// (1/sqrt(head_dim), or 1/sqrt(hidden/heads) for its 27B sizes) as query_pre_attn_scalar, soft-capping, the window
    /// and its layer pattern (every 2nd / 6th layer full), and Gemma 3's local RoPE base 10000.
    /// </summary>
    static void AddGemma(JsonObject config, GgufFile file, string arch, string path, int layers, uint hidden, uint heads, uint headDim)
    {
        var bigSize = (arch == "gemma2" && layers == 46) || (arch == "gemma3" && layers == 62);
        config["hidden_activation"] = "gelu_pytorch_tanh";
        config["hidden_act"] = "gelu_pytorch_tanh";
        config["query_pre_attn_scalar"] = bigSize ? hidden / heads : headDim;
        // llama.cpp's gemma2 soft-caps at 50 and 30 when the file does not say.
        double? attnCap = arch == "gemma2" ? Convert.ToDouble(file.Get($"{arch}.attn_logit_softcapping") ?? 50f) : null;
        double? finalCap = file.Get($"{arch}.final_logit_softcapping") is { } cap ? Convert.ToDouble(cap) : arch == "gemma2" ? 30.0 : null;
        config["attn_logit_softcapping"] = attnCap;
        config["final_logit_softcapping"] = finalCap;
        var window = file.Get($"{arch}.attention.sliding_window") ?? (arch == "gemma2" ? 4096u : throw new OspreyException($"{path} lacks metadata '{arch}.attention.sliding_window'; the file is incomplete."));
        config["sliding_window"] = Convert.ToInt32(window);
        var period = arch == "gemma2" ? 2 : 6;
        config["layer_types"] = new JsonArray(Enumerable.Range(0, layers).Select(i => (JsonNode?)((i + 1) % period == 0 ? "full_attention" : "sliding_attention")).ToArray());
        if (arch == "gemma3") config["rope_local_base_freq"] = 10000.0;
    }

    /// <summary>
    /// Llama 3.1 rope scaling from llama.cpp's per-frequency <c>rope_freqs</c>: the factor is the largest entry; the
    /// wavelength bounds (original_max_position_embeddings / low_freq_factor and / high_freq_factor) follow from the
    /// blended entries, or are placed between the neighbouring entries where fewer than two are blended (any value
    /// there gives the same factors). Only the bounds' ratios to original_max_position_embeddings matter, so it is set
    /// to 8192 (Llama 3.1's). The parameters are checked by recomputing every factor.
    /// </summary>
    static JsonObject? Llama3Scaling(float[] f, double theta, int headDim, string path)
    {
        var factor = (double)f.Max();
        if (factor <= 1.0) return null;
        const double orig = 8192;
        var wl = Enumerable.Range(0, f.Length).Select(i => 2 * Math.PI * Math.Pow(theta, 2.0 * i / headDim)).ToArray();
        bool Near(double a, double b) => Math.Abs(a - b) <= 1e-5 * Math.Max(1, Math.Abs(b));
        var shortWl = Enumerable.Range(0, f.Length).Where(i => Near(f[i], 1)).Select(i => wl[i]).DefaultIfEmpty(wl[0] / 2).Max();
        var longWl = Enumerable.Range(0, f.Length).Where(i => Near(f[i], factor)).Select(i => wl[i]).DefaultIfEmpty(wl[^1] * 2).Min();
        var blended = Enumerable.Range(0, f.Length).Where(i => !Near(f[i], 1) && !Near(f[i], factor))
            .Select(i => (X: orig / wl[i], S: (1 / f[i] - 1 / factor) / (1 - 1 / factor))).ToArray();
        double low, high; // low_freq_factor, high_freq_factor
        if (blended.Length >= 2)
        {
            // s = (x − low) / (high − low) at the two outermost blended entries.
            var (a, b) = (blended[0], blended[^1]);
            var span = (a.X - b.X) / (a.S - b.S);
            low = a.X - a.S * span;
            high = low + span;
        }
        else if (blended.Length == 1)
        {
            high = orig / Math.Sqrt(shortWl * (orig / blended[0].X));
            low = (blended[0].X - blended[0].S * high) / (1 - blended[0].S);
        }
        else
        {
            var highWl = Math.Sqrt(shortWl * longWl);
            high = orig / highWl;
            low = orig / Math.Sqrt(highWl * longWl);
        }
        var rope = new Models.RopeSettings { Theta = theta, Type = "llama3", Factor = factor, LowFreqFactor = low, HighFreqFactor = high, OriginalMaxPositionEmbeddings = orig };
        var check = GgufExport.Llama3RopeFactors(rope, headDim);
        for (int i = 0; i < f.Length; i++)
            if (Math.Abs(check[i] - f[i]) > 1e-4 * Math.Abs(f[i]))
                throw new OspreyException($"{path}: rope_freqs.weight[{i}] = {f[i]} does not follow Llama 3.1's rope scaling (it would be {check[i]}); Osprey reads only that kind of per-frequency factors.");
        return new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = factor, ["low_freq_factor"] = low, ["high_freq_factor"] = high,
            ["original_max_position_embeddings"] = orig,
        };
    }

    static readonly Dictionary<string, string> s_layerParts = new(StringComparer.Ordinal)
    {
        ["attn_norm"] = "input_layernorm",
        ["ffn_norm"] = "post_attention_layernorm",
        ["attn_q"] = "self_attn.q_proj",
        ["attn_k"] = "self_attn.k_proj",
        ["attn_v"] = "self_attn.v_proj",
        ["attn_output"] = "self_attn.o_proj",
        ["attn_q_norm"] = "self_attn.q_norm",
        ["attn_k_norm"] = "self_attn.k_norm",
        ["ffn_gate"] = "mlp.gate_proj",
        ["ffn_up"] = "mlp.up_proj",
        ["ffn_down"] = "mlp.down_proj",
    };

    // Gemma's sandwich norms and Phi-3's fused projections (the reverse of GgufExport's names).
    static readonly Dictionary<string, string> s_gemmaParts = new(StringComparer.Ordinal)
    {
        ["post_attention_norm"] = "post_attention_layernorm",
        ["ffn_norm"] = "pre_feedforward_layernorm",
        ["post_ffw_norm"] = "post_feedforward_layernorm",
    };

    static readonly Dictionary<string, string> s_phi3Parts = new(StringComparer.Ordinal)
    {
        ["attn_qkv"] = "self_attn.qkv_proj",
        ["ffn_up"] = "mlp.gate_up_proj",
    };

    static string HfName(string name, string path, bool gemma, bool phi3)
    {
        switch (name)
        {
            case "token_embd.weight": return "model.embed_tokens.weight";
            case "output_norm.weight": return "model.norm.weight";
            case "output.weight": return "lm_head.weight";
        }
        var parts = name.Split('.');
        if (parts.Length == 4 && parts[0] == "blk"
            && ((gemma && s_gemmaParts.TryGetValue(parts[2], out var hf)) || (phi3 && s_phi3Parts.TryGetValue(parts[2], out hf)) || s_layerParts.TryGetValue(parts[2], out hf)))
            return $"model.layers.{parts[1]}.{hf}.{parts[3]}";
        throw new OspreyException($"{path}: tensor '{name}' has no Hugging Face counterpart Osprey knows; this GGUF has a part Osprey does not load yet.");
    }
}
