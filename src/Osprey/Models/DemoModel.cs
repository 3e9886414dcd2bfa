using Osprey.Io;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// A tiny Llama-3-shaped model with seeded random weights, built on first use so that <c>osprey infer</c>
/// runs with no download and no network. Its output is meaningless text-wise; it exists to show the whole
/// path (config → safetensors → model → generation) working on any machine.
/// </summary>
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
        if (File.Exists(Path.Combine(directory, "model.safetensors")) && File.Exists(Path.Combine(directory, "config.json")))
            return directory;
        Directory.CreateDirectory(directory);
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
}
