using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// <see cref="CausalLM.Load(string, Device, ScalarType)"/> on copies of the parity fixtures, broken or rewritten:
/// strict weight matching, config errors, the transformers 4 RoPE fields, tied lm_head copies, sharded
/// checkpoints and bfloat16 loading.
/// </summary>
public sealed class ModelLoadingTests
{
    const string Weights = "model.safetensors";

    static readonly long[] s_ids = [1, 5, 9, 200, 33, 17, 4, 250, 61, 120, 7, 99, 3, 18, 140, 66];

    static string FixtureDir(string family) => Path.Combine(TestPaths.Fixtures, "parity", family);

    /// <summary>Copies config.json, generation_config.json and model.safetensors of a fixture into <paramref name="dir"/>.</summary>
    static void CopyFixture(string family, TempDirectory dir)
    {
        foreach (var name in new[] { "config.json", "generation_config.json", Weights })
            File.Copy(Path.Combine(FixtureDir(family), name), dir.File(name));
    }

    /// <summary>Every tensor of a model.safetensors, read into memory, in file order.</summary>
    static List<KeyValuePair<string, Tensor>> ReadTensors(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return file.Entries.Select(e => KeyValuePair.Create(e.Name, file.ReadTensor(e.Name))).ToList();
    }

    static void RewriteWeights(TempDirectory dir, Func<List<KeyValuePair<string, Tensor>>, IEnumerable<KeyValuePair<string, Tensor>>> change)
    {
        var tensors = ReadTensors(dir.File(Weights));
        SafetensorsWriter.Write(dir.File(Weights), change(tensors).ToList());
    }

    static void RewriteConfig(TempDirectory dir, Action<JsonObject> change)
    {
        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!.AsObject();
        change(config);
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
    }

    static CausalLM Load(string dir, ScalarType dtype = ScalarType.Float32)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return CausalLM.Load(dir, CPU, dtype);
    }

    /// <summary>float32 logits of the model in <paramref name="dir"/> for a fixed 16-token input.</summary>
    static Tensor Logits(string dir, ScalarType dtype = ScalarType.Float32)
    {
        using var model = Load(dir, dtype);
        using var _ = no_grad();
        using var ids = tensor(s_ids, [1, s_ids.Length]);
        return model.Forward(ids).to_type(ScalarType.Float32);
    }

    static float MaxDiff(Tensor a, Tensor b)
    {
        Assert.Equal(a.shape, b.shape);
        return (a - b).abs().max().item<float>();
    }

    static OspreyException LoadFails(TempDirectory dir) => Assert.ThrowsAny<OspreyException>(() => Load(dir.Path).Dispose());

    [Fact]
    public void MissingTensorIsNamed()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        const string dropped = "model.layers.1.mlp.up_proj.weight";
        RewriteWeights(dir, ts =>
        {
            Assert.Contains(ts, kv => kv.Key == dropped);
            return ts.Where(kv => kv.Key != dropped);
        });
        var e = LoadFails(dir);
        Assert.Contains($"'{dropped}'", e.Message, StringComparison.Ordinal);
        Assert.Contains("lacks", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnexpectedTensorIsNamed()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        const string extra = "model.layers.0.extra.weight";
        RewriteWeights(dir, ts => ts.Append(KeyValuePair.Create(extra, zeros(4, 4))));
        var e = LoadFails(dir);
        Assert.Contains($"'{extra}'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UntiedModelRejectsMissingLmHead()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        RewriteWeights(dir, ts => ts.Where(kv => kv.Key != "lm_head.weight"));
        var e = LoadFails(dir);
        Assert.Contains("'lm_head.weight'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MisShapedTensorIsNamedWithBothShapes()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        const string name = "model.layers.0.mlp.down_proj.weight";
        RewriteWeights(dir, ts => ts.Select(kv => kv.Key == name ? KeyValuePair.Create(name, zeros(64, 127)) : kv));
        var e = LoadFails(dir);
        Assert.Contains($"'{name}'", e.Message, StringComparison.Ordinal);
        Assert.Contains("[64, 127]", e.Message, StringComparison.Ordinal);
        Assert.Contains("[64, 128]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownModelTypeListsTheSupportedOnes()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        RewriteConfig(dir, c =>
        {
            c["model_type"] = "gpt_unknown";
            c["architectures"] = new JsonArray("GptUnknownForCausalLM");
        });
        var e = LoadFails(dir);
        Assert.Contains("gpt_unknown", e.Message, StringComparison.Ordinal);
        foreach (var type in new[] { "llama", "qwen2", "qwen3", "mistral", "phi3", "gemma2", "gemma3_text" })
            Assert.Contains(type, e.Message, StringComparison.Ordinal);
        Assert.Contains(dir.File("config.json"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ArchitecturesAreUsedOnlyWhenModelTypeIsAbsent()
    {
        // A model_type Osprey does not know is an error even when architectures names a known class: the
        // config may describe a different model that happens to reuse a class name.
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        RewriteConfig(dir, c => c["model_type"] = "gpt_unknown");
        Assert.Contains("gpt_unknown", LoadFails(dir).Message, StringComparison.Ordinal);
        RewriteConfig(dir, c => c.Remove("model_type"));
        var spec = ModelRegistry.ReadSpec(dir.Path);
        Assert.True(spec.QkvBias); // read as llama through LlamaForCausalLM: attention_bias
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("42")]
    [InlineData("null")]
    public void ConfigThatIsNotAnObjectIsNamed(string json)
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        File.WriteAllText(dir.File("config.json"), json);
        Assert.Contains(dir.File("config.json"), LoadFails(dir).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NonIntegerTokenIdIsNamed()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        RewriteConfig(dir, c => c["eos_token_id"] = 2.5);
        Assert.Contains("eos_token_id", LoadFails(dir).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FolderWithoutWeightsIsNamed()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        File.Delete(dir.File(Weights));
        var e = LoadFails(dir);
        Assert.Contains(dir.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains("model.safetensors", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingConfigNamesTheFolder()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        File.Delete(dir.File("config.json"));
        var e = LoadFails(dir);
        Assert.Contains(dir.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains("config.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidConfigJsonNamesTheFile()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        File.WriteAllText(dir.File("config.json"), "{ \"model_type\": \"llama\", \"hidden_size\": }");
        var e = LoadFails(dir);
        Assert.Contains(dir.File("config.json"), e.Message, StringComparison.Ordinal);
        Assert.Contains("not valid JSON", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KeyValueHeadsThatDoNotDivideTheHeadsAreNamed()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        RewriteConfig(dir, c => c["num_key_value_heads"] = 3);
        var e = LoadFails(dir);
        Assert.Contains("num_key_value_heads", e.Message, StringComparison.Ordinal);
        Assert.Contains("config.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongTypedConfigFieldNamesTheFile()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        RewriteConfig(dir, c => c["hidden_size"] = "wide");
        var e = LoadFails(dir);
        Assert.Contains("config.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TiedModelAcceptsAnLmHeadCopy()
    {
        using var dir = new TempDirectory();
        CopyFixture("qwen2", dir);
        using var original = Logits(dir.Path);
        RewriteWeights(dir, ts =>
        {
            Assert.DoesNotContain(ts, kv => kv.Key == "lm_head.weight");
            var embed = ts.Single(kv => kv.Key == "model.embed_tokens.weight").Value;
            return ts.Append(KeyValuePair.Create("lm_head.weight", embed.clone()));
        });
        using (var file = SafetensorsFile.Open(dir.File(Weights)))
            Assert.True(file.Contains("lm_head.weight"));
        using var model = Load(dir.Path);
        Assert.True(model.Spec.TieWordEmbeddings);
        using var withCopy = Logits(dir.Path);
        Assert.Equal(0f, MaxDiff(original, withCopy));
    }

    [Fact]
    public void TransformersFourRopeFieldsGiveTheSameLogits_Linear()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        using var original = Logits(dir.Path);
        RewriteConfig(dir, c =>
        {
            Assert.Equal("linear", c["rope_parameters"]!["rope_type"]!.GetValue<string>());
            c.Remove("rope_parameters");
            c["rope_theta"] = 10000.0;
            c["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2.0 };
        });
        Assert.Equal(0f, MaxDiff(original, Logits(dir.Path)));

        // The scaling must matter, or the comparison above proves nothing.
        RewriteConfig(dir, c => c.Remove("rope_scaling"));
        Assert.True(MaxDiff(original, Logits(dir.Path)) > 1e-4f, "dropping rope_scaling changed nothing");
    }

    [Fact]
    public void TransformersFourRopeFieldsGiveTheSameLogits_Llama3()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama3", dir);
        using var original = Logits(dir.Path);
        RewriteConfig(dir, c =>
        {
            var rp = c["rope_parameters"]!.AsObject();
            Assert.Equal("llama3", rp["rope_type"]!.GetValue<string>());
            c.Remove("rope_parameters");
            c["rope_theta"] = 500000.0;
            c["rope_scaling"] = new JsonObject
            {
                ["rope_type"] = "llama3",
                ["factor"] = 8.0,
                ["low_freq_factor"] = 1.0,
                ["high_freq_factor"] = 4.0,
                ["original_max_position_embeddings"] = 32,
            };
        });
        var spec = ModelRegistry.ReadSpec(dir.Path);
        Assert.All(spec.Layers, l => Assert.Equal(new RopeSettings
        {
            Type = "llama3", Theta = 500000, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 32,
        }, l.Rope));
        Assert.Equal(0f, MaxDiff(original, Logits(dir.Path)));

        RewriteConfig(dir, c => c.Remove("rope_scaling"));
        Assert.True(MaxDiff(original, Logits(dir.Path)) > 1e-4f, "dropping rope_scaling changed nothing");
    }

    [Fact]
    public void UnsupportedRopeTypeIsNamed()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        RewriteConfig(dir, c => c["rope_parameters"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0, ["rope_theta"] = 10000.0 });
        var e = LoadFails(dir);
        Assert.Contains("'yarn'", e.Message, StringComparison.Ordinal);
        Assert.Contains("llama3", e.Message, StringComparison.Ordinal);

        // The transformers 4 spelling is checked the same way.
        RewriteConfig(dir, c =>
        {
            c.Remove("rope_parameters");
            c["rope_scaling"] = new JsonObject { ["type"] = "dynamic", ["factor"] = 2.0 };
        });
        Assert.Contains("'dynamic'", LoadFails(dir).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ShardedCheckpointGivesTheSameLogits()
    {
        using var dir = new TempDirectory();
        CopyFixture("llama", dir);
        using var original = Logits(dir.Path);
        var tensors = ReadTensors(dir.File(Weights));
        var written = SafetensorsWriter.WriteSharded(dir.Path, tensors, maxShardBytes: 100_000);

        Assert.True(written.Count >= 3, $"expected several shards and an index, got {string.Join(", ", written)}");
        Assert.Equal("model.safetensors.index.json", written[^1]);
        Assert.False(File.Exists(dir.File(Weights)), "the single-file checkpoint should have been replaced");
        using (var checkpoint = SafetensorsCheckpoint.Open(dir.Path))
        {
            Assert.Equal(written.Count - 1, checkpoint.Files.Count);
            Assert.Equal(tensors.Count, checkpoint.Names.Count);
        }
        Assert.Equal(0f, MaxDiff(original, Logits(dir.Path)));

        // A shard gone missing is reported, not silently skipped.
        File.Delete(dir.File(written[1]));
        Assert.Contains(written[1], LoadFails(dir).Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// bfloat16 weights and activations: logits within 5% of the largest float32 logit. The fixtures'
    /// initializer_range (0.2) gives logits up to about 6, where merely rounding the weights to bfloat16 moves
    /// them by about 0.1, so an absolute 0.1 bound holds only for the soft-capped Gemma fixture.
    /// </summary>
    [Theory]
    [InlineData("llama")]
    [InlineData("qwen3")]
    [InlineData("gemma2")]
    public void BFloat16LoadIsCloseToFloat32(string family)
    {
        var dir = FixtureDir(family);
        using var reference = Logits(dir);
        using (var model = Load(dir, ScalarType.BFloat16))
        {
            Assert.Equal(ScalarType.BFloat16, model.DType);
            var parameters = model.state_dict().ToList();
            Assert.NotEmpty(parameters);
            Assert.All(parameters, kv => Assert.Equal(ScalarType.BFloat16, kv.Value.dtype));
        }
        using var half = Logits(dir, ScalarType.BFloat16);
        var diff = MaxDiff(reference, half);
        var scale = reference.abs().max().item<float>();
        Assert.True(diff < 0.05f * scale, $"{family}: bfloat16 logits differ from float32 by {diff} (max |logit| {scale})");
        if (family == "gemma2") Assert.True(diff < 0.1f, $"gemma2: bfloat16 logits differ from float32 by {diff}");
        Assert.True(diff > 0f, "bfloat16 logits are bit-identical to float32, so bfloat16 was not used");
    }
}
