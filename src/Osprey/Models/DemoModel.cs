using System.Text.Json.Nodes;
using Osprey.Io;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// A tiny Llama-3-shaped model with seeded random weights, built on first use so that <c>osprey infer</c>
/// runs with no download and no network. Its output is meaningless text-wise; it exists to show the whole
/// path (config → safetensors → model → generation) working on any machine.
/// </summary>
/// <remarks>
/// Its tokenizer is character-level BPE without merges, with a ChatML chat template, so <c>osprey infer</c> can
/// chat with it. The vocabulary has 256 ids: 0 <c>&lt;|endoftext|&gt;</c> (pad, and unk for characters outside
/// the vocabulary), 1 <c>&lt;|im_start|&gt;</c>, 2 <c>&lt;|im_end|&gt;</c> (eos), and 3–255 printable characters
/// (newline, tab, ASCII, Latin-1, some Greek and Cyrillic). Printable only, so that the random model's replies
/// never hold terminal control characters or broken UTF-8.
/// </remarks>
public static class DemoModel
{
    const string Config = """
        {
          "architectures": ["LlamaForCausalLM"],
          "model_type": "llama",
          "vocab_size": 256,
          "hidden_size": 64,
          "intermediate_size": 128,
          "num_hidden_layers": 2,
          "num_attention_heads": 4,
          "num_key_value_heads": 2,
          "head_dim": 16,
          "hidden_act": "silu",
          "max_position_embeddings": 1024,
          "rms_norm_eps": 1e-06,
          "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
          "tie_word_embeddings": true,
          "bos_token_id": 1,
          "eos_token_id": 2,
          "pad_token_id": 0,
          "dtype": "float32"
        }
        """;

    const string GenerationConfig = """
        {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "do_sample": false}
        """;

    /// <summary>The default folder: $XDG_CACHE_HOME/osprey/demo-llama (or ~/.cache/osprey/demo-llama).</summary>
    public static string DefaultDirectory
    {
        get
        {
            var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (string.IsNullOrEmpty(cache))
                cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(cache, "osprey", "demo-llama-v1");
        }
    }

    /// <summary>Writes the demo model folder unless it is already complete; returns the folder.</summary>
    public static string EnsureCreated(string? directory = null)
    {
        directory ??= DefaultDirectory;
        Directory.CreateDirectory(directory);
        // Folders made before the demo had a tokenizer get one; the weights are the same.
        if (!File.Exists(Path.Combine(directory, "tokenizer.json")) || !File.Exists(Path.Combine(directory, "tokenizer_config.json")))
            WriteTokenizer(directory);
        if (File.Exists(Path.Combine(directory, "model.safetensors")) && File.Exists(Path.Combine(directory, "config.json")))
            return directory;
        // TorchSharp must not load its own libtorch first; callers normally initialised the runtime already.
        if (Runtime.TorchRuntime.Current is null) Runtime.TorchRuntime.Initialize();
        var spec = new Llama.LlamaFamily().ReadSpec(System.Text.Json.JsonDocument.Parse(Config), "demo config.json");
        using var model = new CausalLM(spec, ScalarType.Float32, CPU);
        var rng = new Generator(20261124, CPU);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (no_grad())
        {
            foreach (var (name, t) in model.state_dict())
            {
                // Norm weights near 1, everything else N(0, 0.2): enough contrast for varied greedy output.
                var values = name.EndsWith("norm.weight", StringComparison.Ordinal)
                    ? 1.0 + 0.1 * randn(t.shape, generator: rng)
                    : 0.2 * randn(t.shape, generator: rng);
                tensors.Add(new(name, values));
            }
        }
        // Weights first, config last: a folder with config.json is complete.
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), tensors);
        File.WriteAllText(Path.Combine(directory, "generation_config.json"), GenerationConfig);
        var tmp = Path.Combine(directory, "config.json.tmp");
        File.WriteAllText(tmp, Config);
        File.Move(tmp, Path.Combine(directory, "config.json"), overwrite: true);
        foreach (var (_, t) in tensors) t.Dispose();
        return directory;
    }

    const string ChatTemplate =
        "{%- for message in messages %}" +
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
        "{%- endfor %}" +
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    static readonly string[] SpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    /// <summary>Writes the demo tokenizer (tokenizer.json, tokenizer_config.json) into <paramref name="directory"/>.</summary>
    public static void WriteTokenizer(string directory)
    {
        var vocab = new JsonObject();
        var added = new JsonArray();
        var decoder = new JsonObject();
        for (var id = 0; id < SpecialTokens.Length; id++)
        {
            vocab[SpecialTokens[id]] = id;
            added.Add(new JsonObject
            {
                ["id"] = id, ["content"] = SpecialTokens[id], ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
            decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = SpecialTokens[id], ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false,
                ["single_word"] = false, ["special"] = true,
            };
        }
        var alphabet = Alphabet();
        for (var i = 0; i < alphabet.Count; i++) vocab[alphabet[i].ToString()] = SpecialTokens.Length + i;
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = null,
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "Fuse" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = SpecialTokens[0], ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = new JsonArray(),
            },
        };
        var config = new JsonObject
        {
            ["added_tokens_decoder"] = decoder,
            ["bos_token"] = null,
            ["eos_token"] = "<|im_end|>",
            ["pad_token"] = "<|endoftext|>",
            ["unk_token"] = SpecialTokens[0],
            ["chat_template"] = ChatTemplate,
            ["clean_up_tokenization_spaces"] = false,
            ["model_max_length"] = 1024,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        };
        var indented = new System.Text.Json.JsonSerializerOptions { WriteIndented = true };
        WriteAtomically(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString(indented));
        WriteAtomically(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(indented));
    }

    /// <summary>The 253 characters of ids 3–255, in id order.</summary>
    static List<char> Alphabet()
    {
        var chars = new List<char> { '\n', '\t' };
        (int First, int Last)[] ranges = [(0x20, 0x7E), (0xA1, 0xFF), (0x3B1, 0x3C9), (0x430, 0x44F), (0x391, 0x395)];
        foreach (var (first, last) in ranges)
            for (var c = first; c <= last; c++)
                if (c != 0xAD) chars.Add((char)c); // U+00AD, the soft hyphen, is invisible
        return chars.Count == 256 - SpecialTokens.Length ? chars : throw new InvalidOperationException($"demo alphabet has {chars.Count} characters");
    }

    static void WriteAtomically(string path, string text)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
