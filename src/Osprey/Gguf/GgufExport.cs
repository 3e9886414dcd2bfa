using System.Text.RegularExpressions;
using Osprey.Models;
using TorchSharp;

namespace Osprey.Gguf;

/// <summary>
/// Writes a loaded model as one GGUF file that llama.cpp (and Ollama, LLamaSharp) runs: llama.cpp's tensor names
/// and architecture metadata, the tokenizer and chat template, and the weights in one of llama.cpp's quant types.
/// Families: llama, mistral (both as llama.cpp's <c>llama</c>, with Q/K rows permuted to its rotary layout), qwen2,
/// qwen3, phi3, gemma2 and gemma3_text (as <c>gemma3</c>). Norms, biases and rope factors stay float32; see <see cref="TypeFor"/> for the per-tensor mix.
/// </summary>
public static partial class GgufExport
{
    /// <summary>The values --gguf_quant takes (llama.cpp's names).</summary>
    public static readonly IReadOnlyList<string> QuantNames = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m", "q5_k_m", "q6_k"];

    static readonly Dictionary<string, string> s_architectures = new(StringComparer.Ordinal)
    {
        ["llama"] = "llama",
        ["mistral"] = "llama",
        ["qwen2"] = "qwen2",
        ["qwen3"] = "qwen3",
        ["phi3"] = "phi3",
        ["gemma2"] = "gemma2",
        ["gemma3_text"] = "gemma3",
    };

    /// <summary>The model types (config.json model_type) that export to GGUF.</summary>
    public static IReadOnlyCollection<string> ModelTypes => s_architectures.Keys;

    /// <summary>
    /// Writes <paramref name="model"/> (tokenizer files from <paramref name="folder"/>) to <paramref name="path"/> as
    /// <paramref name="quant"/> (one of <see cref="QuantNames"/>), through a temporary file and a rename. Returns
    /// each GGUF tensor's name and type. A cancelled <paramref name="cancellationToken"/> stops between tensors.
    /// </summary>
    public static IReadOnlyDictionary<string, GgmlType> Write(CausalLM model, string folder, string path, string quant, CancellationToken cancellationToken = default)
    {
        quant = quant.ToLowerInvariant();
        if (!QuantNames.Contains(quant)) throw new OspreyException($"--gguf_quant {quant} is not a GGUF type Osprey writes; use one of {string.Join(", ", QuantNames)}.");
        var spec = model.Spec;
        if (!s_architectures.TryGetValue(spec.ModelType, out var arch))
            throw new OspreyException($"GGUF export does not cover model_type '{spec.ModelType}' yet; it covers {string.Join(", ", s_architectures.Keys)}.");
        CheckLlamaCppCanRun(arch, spec, folder);
        if (model.QuantizedLayerCount > 0) model.Dequantize();

        var w = new GgufWriter();
        w.Add("general.architecture", arch);
        var modelName = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        // llama.cpp marks "</s>", "<unk>", "<s>" and "<|endoftext|>" by name for a model whose general.name contains
        // "phi3" or "phi-3" and fails to load a vocabulary that lacks one; the name is optional, so it is left out then.
        if (!(modelName.Contains("phi3", StringComparison.OrdinalIgnoreCase) || modelName.Contains("phi-3", StringComparison.OrdinalIgnoreCase))
            || GgufVocabulary.HasTokens(folder, ["</s>", "<unk>", "<s>", "<|endoftext|>"]))
            w.Add("general.name", modelName);
        w.Add("general.alignment", (uint)GgufWriter.DefaultAlignment);
        w.Add("general.file_type", FileType(quant));
        if (quant.StartsWith('q')) w.Add("general.quantization_version", 2u);
        AddArchitecture(w, arch, spec);
        GgufVocabulary.Add(w, folder, spec.VocabSize);

        var tensors = model.CheckpointTensors();
        var types = new Dictionary<string, GgmlType>(StringComparer.Ordinal);
        var layers = spec.Layers.Count;
        foreach (var (hfName, tensor) in tensors.OrderBy(t => Order(t.Key)))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (name, layer) = TensorName(hfName, spec.ModelType);
            // Gemma stores RMSNorm weights as w and multiplies by 1 + w; llama.cpp multiplies by the stored weight,
            // so its converter stores 1 + w (every Gemma norm, q/k norms included).
            var addOne = spec.OffsetNorm && name.EndsWith("norm.weight", StringComparison.Ordinal);
            var shape = tensor.shape;
            var dims = shape.Reverse().ToArray();
            var type = TypeFor(name, dims, quant, layer, layers, hasOutput: !spec.TieWordEmbeddings);
            var permuteHeads = arch != "llama" ? 0 : (name.Contains(".attn_q.", StringComparison.Ordinal) ? spec.NumHeads : name.Contains(".attn_k.", StringComparison.Ordinal) ? spec.NumKvHeads : 0);
            var source = tensor;
            // Encoded while the file is written, one tensor at a time.
            w.AddTensor(name, dims, type, () =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                var values = Floats(source);
                if (permuteHeads > 0) values = PermuteRotary(values, shape[0], permuteHeads);
                if (addOne) for (int i = 0; i < values.Length; i++) values[i] += 1f;
                return GgmlCodec.Encode(type, values);
            }, GgmlCodec.ByteCount(type, dims.Aggregate(1L, (a, b) => a * b)));
            types[name] = type;
        }
        if (arch == "llama" && spec.Layers[0].Rope.Type == "llama3")
        {
            var factors = Llama3RopeFactors(spec.Layers[0].Rope, spec.HeadDim);
            w.AddTensor("rope_freqs.weight", [factors.Length], GgmlType.F32, GgmlCodec.Encode(GgmlType.F32, factors));
            types["rope_freqs.weight"] = GgmlType.F32;
        }
        cancellationToken.ThrowIfCancellationRequested();
        w.Write(path);
        return types;
    }

    /// <summary>
    /// The type a tensor gets for <paramref name="quant"/>, after llama.cpp's rule of thumb (llama_tensor_get_type):
    /// 1-D tensors (norms, biases) stay f32; q4_k_m/q5_k_m use q4_K/q5_K with q6_K for attn_v and ffn_down in the
    /// first and last eighth of the layers and every third layer between, and q6_K for the output matrix (the token
    /// embedding when it is tied); q4_0, q4_1, q5_0 and q5_1 also give the output matrix q6_K. A k-quant needs rows
    /// that are a multiple of 256 and falls back as llama.cpp does (q4_K → q5_0, q5_K → q5_1, q6_K → q8_0); the 32-value
    /// blocks need multiples of 32 and fall back to f16.
    /// </summary>
    public static GgmlType TypeFor(string name, long[] dims, string quant, int layer, int layerCount, bool hasOutput)
    {
        if (dims.Length < 2) return GgmlType.F32;
        var isOutput = name == "output.weight" || (!hasOutput && name == "token_embd.weight");
        var moreBits = layer >= 0 && (layer < layerCount / 8 || layer >= 7 * layerCount / 8 || (layer - layerCount / 8) % 3 == 2);
        var type = quant switch
        {
            "f32" => GgmlType.F32,
            "f16" => GgmlType.F16,
            "bf16" => GgmlType.BF16,
            "q8_0" => GgmlType.Q8_0,
            "q4_0" => isOutput ? GgmlType.Q6_K : GgmlType.Q4_0,
            "q4_1" => isOutput ? GgmlType.Q6_K : GgmlType.Q4_1,
            "q5_0" => isOutput ? GgmlType.Q6_K : GgmlType.Q5_0,
            "q5_1" => isOutput ? GgmlType.Q6_K : GgmlType.Q5_1,
            "q6_k" => GgmlType.Q6_K,
            "q4_k_m" or "q5_k_m" when isOutput => GgmlType.Q6_K,
            "q4_k_m" or "q5_k_m" when moreBits && (name.EndsWith(".attn_v.weight", StringComparison.Ordinal) || name.EndsWith(".ffn_down.weight", StringComparison.Ordinal)) => GgmlType.Q6_K,
            "q4_k_m" => GgmlType.Q4_K,
            "q5_k_m" => GgmlType.Q5_K,
            _ => throw new OspreyException($"--gguf_quant {quant} is not a GGUF type Osprey writes; use one of {string.Join(", ", QuantNames)}."),
        };
        if (dims[0] % 256 != 0)
            type = type switch { GgmlType.Q4_K => GgmlType.Q5_0, GgmlType.Q5_K => GgmlType.Q5_1, GgmlType.Q6_K => GgmlType.Q8_0, _ => type };
        if (type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 && dims[0] % 32 != 0) type = GgmlType.F16;
        return type;
    }

    static uint FileType(string quant) => quant switch
    {
        // llama_ftype values.
        "f32" => 0,
        "f16" => 1,
        "q4_0" => 2,
        "q4_1" => 3,
        "q8_0" => 7,
        "q5_0" => 8,
        "q5_1" => 9,
        "q4_k_m" => 15,
        "q5_k_m" => 17,
        "q6_k" => 18,
        _ => 32, // bf16
    };

    /// <summary>
    /// llama.cpp hard-codes parts of Gemma 2/3 (the attention scale 1/sqrt(head_dim), the sliding-window layer pattern,
    /// Gemma 3's local RoPE base 10000 without scaling) and has no Phi-3 long-context RoPE from a file's metadata; a
    /// model that departs from them would run differently there, so it is refused with the field that differs.
    /// </summary>
    static void CheckLlamaCppCanRun(string arch, DecoderSpec spec, string folder)
    {
        var config = Path.Combine(folder, "config.json");
        var layers = spec.Layers;
        if (arch is "gemma2" or "gemma3")
        {
            // llama.cpp's 27B types (46 and 62 layers) scale by 1/sqrt(hidden/heads), every other size by 1/sqrt(head_dim).
            var bigSize = (arch == "gemma2" && layers.Count == 46) || (arch == "gemma3" && layers.Count == 62);
            var expected = 1.0 / Math.Sqrt(bigSize ? (double)spec.HiddenSize / spec.NumHeads : spec.HeadDim);
            if (spec.AttentionScale is { } scale && Math.Abs(scale - expected) > 1e-9 * expected)
                throw new OspreyException($"{config}: query_pre_attn_scalar gives the attention scale {scale:G6}, but llama.cpp's {arch} always uses {expected:G6} for a {layers.Count}-layer model, so the GGUF would run differently; export a folder instead.");
            // llama.cpp's gemma2 always soft-caps (50 and 30 unless the file says), its gemma3 never caps attention.
            if (arch == "gemma2" && (spec.AttentionSoftcap is null || spec.FinalLogitSoftcap is null))
                throw new OspreyException($"{config}: attn_logit_softcapping or final_logit_softcapping is null, but llama.cpp's gemma2 always soft-caps both, so the GGUF would run differently; export a folder instead.");
            if (arch == "gemma3" && spec.AttentionSoftcap is not null)
                throw new OspreyException($"{config}: attn_logit_softcapping is set, but llama.cpp's gemma3 does not soft-cap attention, so the GGUF would run differently; export a folder instead.");
            var period = arch == "gemma2" ? 2 : 6;
            for (int i = 0; i < layers.Count; i++)
            {
                var sliding = (i + 1) % period != 0;
                if ((layers[i].SlidingWindow is not null) != sliding)
                    throw new OspreyException($"{config}: layer {i} is {(sliding ? "full" : "sliding")} attention, but llama.cpp's {arch} makes every {Ordinal(period)} layer full and the others sliding (layer_types), so the GGUF would run differently; export a folder instead.");
                if (sliding && layers[i].SlidingWindow != layers[0].SlidingWindow)
                    throw new OspreyException($"{config}: the sliding layers have different windows, but llama.cpp's {arch} has one sliding_window; export a folder instead.");
                if (arch == "gemma3" && sliding && (layers[i].Rope.Theta != 10000.0 || layers[i].Rope.Type != "default"))
                    throw new OspreyException($"{config}: the sliding layers' RoPE is {layers[i].Rope}, but llama.cpp's gemma3 fixes it to base 10000 without scaling; export a folder instead.");
            }
        }
        var global = GlobalRope(spec);
        if (global.Type is not ("default" or "linear" or "llama3") || (global.Type == "llama3" && arch != "llama"))
            throw new OspreyException($"{config}: rope scaling '{global.Type}' is not one Osprey writes to a {arch} GGUF (linear is, and llama3 for llama); export a folder instead.");
    }

    static string Ordinal(int n) => n == 2 ? "second" : $"{n}th";

    // The RoPE of the full-attention layers (Gemma 3's sliding layers have their own, fixed in llama.cpp).
    static RopeSettings GlobalRope(DecoderSpec spec) => (spec.Layers.FirstOrDefault(l => l.SlidingWindow is null) ?? spec.Layers[0]).Rope;

    static void AddArchitecture(GgufWriter w, string arch, DecoderSpec spec)
    {
        var rope = GlobalRope(spec);
        w.Add($"{arch}.context_length", (uint)(spec.MaxPositionEmbeddings ?? 2048));
        w.Add($"{arch}.embedding_length", (uint)spec.HiddenSize);
        w.Add($"{arch}.block_count", (uint)spec.Layers.Count);
        w.Add($"{arch}.feed_forward_length", (uint)spec.IntermediateSize);
        w.Add($"{arch}.attention.head_count", (uint)spec.NumHeads);
        w.Add($"{arch}.attention.head_count_kv", (uint)spec.NumKvHeads);
        w.Add($"{arch}.attention.key_length", (uint)spec.HeadDim);
        w.Add($"{arch}.attention.value_length", (uint)spec.HeadDim);
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)spec.RmsNormEps);
        w.Add($"{arch}.rope.freq_base", (float)rope.Theta);
        w.Add($"{arch}.rope.dimension_count", (uint)Math.Round(spec.HeadDim * rope.PartialRotaryFactor));
        w.Add($"{arch}.vocab_size", (uint)spec.VocabSize);
        if (rope.Type == "linear")
        {
            w.Add($"{arch}.rope.scaling.type", "linear");
            w.Add($"{arch}.rope.scaling.factor", (float)rope.Factor);
        }
        if (arch is "gemma2" or "gemma3" && spec.Layers.FirstOrDefault(l => l.SlidingWindow is not null)?.SlidingWindow is { } window)
            w.Add($"{arch}.attention.sliding_window", (uint)window);
        if (arch == "gemma2" && spec.AttentionSoftcap is { } attnCap) w.Add($"{arch}.attn_logit_softcapping", (float)attnCap);
        if (arch is "gemma2" or "gemma3" && spec.FinalLogitSoftcap is { } finalCap) w.Add($"{arch}.final_logit_softcapping", (float)finalCap);
    }

    /// <summary>
    /// llama.cpp's <c>llama</c> architecture rotates adjacent pairs of each head, Hugging Face's Llama rotates its two
    /// halves: row (h, j·half + i) moves to (h, 2i + j), as llama.cpp's converter permutes q_proj and k_proj;
    /// <paramref name="inverse"/> moves them back (reading a GGUF).
    /// </summary>
    internal static float[] PermuteRotary(float[] values, long rows, int heads, bool inverse = false)
    {
        // Weights are [heads·headDim, in], biases [heads·headDim]: whole rows of `width` values move.
        var width = (int)(values.Length / rows);
        var headDim = (int)(rows / heads);
        var half = headDim / 2;
        var result = new float[values.Length];
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < half; i++)
                {
                    long hf = (h * headDim + j * half + i) * width, llama = (h * headDim + 2 * i + j) * width;
                    Array.Copy(values, inverse ? llama : hf, result, inverse ? hf : llama, width);
                }
        return result;
    }

    internal static float[] Llama3RopeFactors(RopeSettings rope, int headDim)
    {
        // Per rotary frequency: 1 for short wavelengths, the factor for long ones, a smooth blend between (Llama 3.1).
        var factors = new float[headDim / 2];
        var lowWavelen = rope.OriginalMaxPositionEmbeddings / rope.LowFreqFactor;
        var highWavelen = rope.OriginalMaxPositionEmbeddings / rope.HighFreqFactor;
        for (int i = 0; i < factors.Length; i++)
        {
            var freq = 1.0 / Math.Pow(rope.Theta, 2.0 * i / headDim);
            var wavelen = 2 * Math.PI / freq;
            if (wavelen < highWavelen) factors[i] = 1f;
            else if (wavelen > lowWavelen) factors[i] = (float)rope.Factor;
            else
            {
                var smooth = (rope.OriginalMaxPositionEmbeddings / wavelen - rope.LowFreqFactor) / (rope.HighFreqFactor - rope.LowFreqFactor);
                factors[i] = (float)(1 / ((1 - smooth) / rope.Factor + smooth));
            }
        }
        return factors;
    }

    static float[] Floats(torch.Tensor tensor)
    {
        using var scope = torch.NewDisposeScope();
        using var f = tensor.detach().to(torch.ScalarType.Float32).cpu().contiguous();
        return f.data<float>().ToArray();
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex LayerName();

    static readonly Dictionary<string, string> s_layerTensors = new(StringComparer.Ordinal)
    {
        ["input_layernorm"] = "attn_norm",
        ["post_attention_layernorm"] = "ffn_norm",
        ["self_attn.q_proj"] = "attn_q",
        ["self_attn.k_proj"] = "attn_k",
        ["self_attn.v_proj"] = "attn_v",
        ["self_attn.o_proj"] = "attn_output",
        ["self_attn.qkv_proj"] = "attn_qkv",
        ["self_attn.q_norm"] = "attn_q_norm",
        ["self_attn.k_norm"] = "attn_k_norm",
        ["mlp.gate_proj"] = "ffn_gate",
        ["mlp.up_proj"] = "ffn_up",
        ["mlp.down_proj"] = "ffn_down",
        ["mlp.gate_up_proj"] = "ffn_up",
    };

    // Gemma's sandwich norms: post_attention_layernorm follows attention there, where other families' precedes the MLP.
    static readonly Dictionary<string, string> s_gemmaNorms = new(StringComparer.Ordinal)
    {
        ["post_attention_layernorm"] = "post_attention_norm",
        ["pre_feedforward_layernorm"] = "ffn_norm",
        ["post_feedforward_layernorm"] = "post_ffw_norm",
    };

    /// <summary>llama.cpp's name for a Hugging Face tensor and its layer (−1 outside the layers).</summary>
    public static (string Name, int Layer) TensorName(string hfName, string modelType)
    {
        switch (hfName)
        {
            case "model.embed_tokens.weight": return ("token_embd.weight", -1);
            case "model.norm.weight": return ("output_norm.weight", -1);
            case "lm_head.weight": return ("output.weight", -1);
            case "lm_head.bias": return ("output.bias", -1);
        }
        var m = LayerName().Match(hfName);
        if (m.Success)
        {
            var rest = m.Groups[2].Value;
            var dot = rest.LastIndexOf('.');
            var gemma = modelType.StartsWith("gemma", StringComparison.Ordinal);
            if (dot > 0 && ((gemma && s_gemmaNorms.TryGetValue(rest[..dot], out var name)) || s_layerTensors.TryGetValue(rest[..dot], out name)))
                return ($"blk.{m.Groups[1].Value}.{name}.{rest[(dot + 1)..]}", int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        throw new OspreyException($"GGUF export has no llama.cpp name for the {modelType} tensor '{hfName}'; this model has a part llama.cpp's {modelType} support lacks.");
    }

    // Token embedding first, then layers in order, then the output: the order llama.cpp's converter writes.
    static (int, int, string) Order(string hfName)
    {
        if (hfName == "model.embed_tokens.weight") return (0, 0, hfName);
        var m = LayerName().Match(hfName);
        if (m.Success) return (1, int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), hfName);
        return (2, 0, hfName);
    }
}
