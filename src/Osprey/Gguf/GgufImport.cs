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
        if (file.Tensors.Any(t => t.Name == "rope_freqs.weight"))
            throw new OspreyException($"{path} has per-frequency rope factors (Llama 3.1 scaling), which Osprey does not load from GGUF yet; load the Hugging Face folder instead.");
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
            ["architectures"] = new JsonArray(modelType switch { "qwen2" => "Qwen2ForCausalLM", "qwen3" => "Qwen3ForCausalLM", _ => "LlamaForCausalLM" }),
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
                var hfName = HfName(t.Name, path);
                var values = file.ReadFloats(t);
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

    static string HfName(string name, string path)
    {
        switch (name)
        {
            case "token_embd.weight": return "model.embed_tokens.weight";
            case "output_norm.weight": return "model.norm.weight";
            case "output.weight": return "lm_head.weight";
        }
        var parts = name.Split('.');
        if (parts.Length == 4 && parts[0] == "blk" && s_layerParts.TryGetValue(parts[2], out var hf))
            return $"model.layers.{parts[1]}.{hf}.{parts[3]}";
        throw new OspreyException($"{path}: tensor '{name}' has no Hugging Face counterpart Osprey knows; this GGUF has a part Osprey does not load yet.");
    }
}
