using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Io;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Cli.Commands;

/// <summary>
/// <c>osprey export</c> end to end: a sharded bfloat16 export of the tied qwen2 fixture is a complete Hugging Face
/// folder whose weights are exactly the original's rounded to bfloat16; a float32 export changes nothing.
/// </summary>
public sealed partial class ExportCommandTests
{
    [GeneratedRegex(@"^model-(\d{5})-of-(\d{5})\.safetensors$")]
    private static partial Regex ShardName();

    private static CliRun Export(string model, string output, params string[] flags) =>
        CliRun.Of(["export", "--model", model, "--output_dir", output, "--device", "cpu", .. flags]);

    /// <summary>Float32 logits for the fixture's padded batch.</summary>
    private static float[] Logits(CausalLM model, ParityCase c)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = model.Forward(c.Tensor("input_ids"), c.Tensor("attention_mask"), c.Tensor("position_ids"));
        return logits.to_type(ScalarType.Float32).data<float>().ToArray();
    }

    private static float MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        var max = 0f;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    private static string[] TensorNames(string safetensorsPath)
    {
        using var file = SafetensorsFile.Open(safetensorsPath);
        return file.Entries.Select(e => e.Name).ToArray();
    }

    private static string CopyOfFixture(TempDirectory temp, string family)
    {
        var copy = Path.Combine(temp.Path, family);
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(CliRun.Fixture(family)))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        return copy;
    }

    [Fact]
    public void ShardedBfloat16ExportIsACompleteFolderAndRoundsTheWeightsExactly()
    {
        using var temp = new TempDirectory();
        var original = CliRun.Fixture("qwen2");
        var output = temp.File("out");

        var run = Export(original, output, "--max_shard_size", "100KB", "--torch_dtype", "bfloat16");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.StartsWith($"osprey: wrote {output} (bfloat16): ", run.Stdout);

        // Shards model-0000N-of-0000M, all of them, M > 1, plus the index, config and generation config.
        var files = Directory.GetFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        var shards = files.Where(f => ShardName().IsMatch(f!)).ToArray();
        var count = int.Parse(ShardName().Match(shards[0]!).Groups[2].Value);
        Assert.True(count > 1, $"expected several shards of at most 100KB, got {string.Join(", ", files)}");
        Assert.Equal(Enumerable.Range(1, count).Select(n => $"model-{n:D5}-of-{count:D5}.safetensors"), shards);
        // The fixture's tokenizer files travel with the weights.
        Assert.Equal(
            shards.Concat(["config.json", "generation_config.json", "model.safetensors.index.json",
                "chat_template.jinja", "tokenizer.json", "tokenizer_config.json"]).Order(StringComparer.Ordinal),
            files);

        // The index maps every tensor of the original (a tied model: no lm_head.weight) to the shard holding it.
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "model.safetensors.index.json")));
        var weightMap = index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        var originalNames = TensorNames(Path.Combine(original, "model.safetensors"));
        Assert.Equal(originalNames.Order(StringComparer.Ordinal), weightMap.Keys.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("lm_head.weight", weightMap.Keys);
        Assert.Equal(shards, weightMap.Values.Distinct().Order(StringComparer.Ordinal));
        foreach (var shard in shards)
        {
            using var file = SafetensorsFile.Open(Path.Combine(output, shard!));
            Assert.All(file.Entries, e => Assert.Equal(shard, weightMap[e.Name]));
            Assert.All(file.Entries, e => Assert.Equal("BF16", e.DType));
        }

        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "config.json"))))
        {
            Assert.Equal("bfloat16", config.RootElement.GetProperty("dtype").GetString());
            Assert.Equal("qwen2", config.RootElement.GetProperty("model_type").GetString());
        }
        Assert.Equal(File.ReadAllText(Path.Combine(original, "generation_config.json")), File.ReadAllText(Path.Combine(output, "generation_config.json")));

        // The export read in float32 computes exactly what the original computes once rounded to bfloat16.
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var c = ParityCase.Load(original);
        using var exported = CausalLM.Load(output, CPU, ScalarType.Float32);
        using var originalBf16 = CausalLM.Load(original, CPU, ScalarType.BFloat16);
        using var roundedOriginal = CausalLM.Load(original, CPU, ScalarType.Float32);
        using (no_grad())
        {
            var bf16Weights = originalBf16.state_dict();
            foreach (var (name, weight) in roundedOriginal.state_dict()) weight.copy_(bf16Weights[name]);
        }
        var expected = Logits(roundedOriginal, c);
        Assert.Equal(0f, MaxAbsDiff(expected, Logits(exported, c)));
        // And the rounding is real: it moves the logits away from the float32 original.
        using var float32Original = CausalLM.Load(original, CPU, ScalarType.Float32);
        Assert.True(MaxAbsDiff(expected, Logits(float32Original, c)) > 0f);
    }

    [Fact]
    public void Float32ExportIsBitIdenticalAndCopiesTheTokenizerFiles()
    {
        using var temp = new TempDirectory();
        var original = CopyOfFixture(temp, "qwen2");
        File.WriteAllText(Path.Combine(original, "tokenizer.json"), """{"version": "1.0", "model": {"type": "BPE"}}""");
        var output = temp.File("out");

        var run = Export(original, output, "--torch_dtype", "float32");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(
            ["chat_template.jinja", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
            Directory.GetFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(File.ReadAllBytes(Path.Combine(original, "tokenizer.json")), File.ReadAllBytes(Path.Combine(output, "tokenizer.json")));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "config.json"))))
            Assert.Equal("float32", config.RootElement.GetProperty("dtype").GetString());

        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var c = ParityCase.Load(CliRun.Fixture("qwen2"));
        using var exported = CausalLM.Load(output, CPU, ScalarType.Float32);
        using var source = CausalLM.Load(original, CPU, ScalarType.Float32);
        var want = Logits(source, c);
        var got = Logits(exported, c);
        Assert.Equal(want.Select(BitConverter.SingleToInt32Bits), got.Select(BitConverter.SingleToInt32Bits));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    public void ExportingOntoTheModelFolderIsRefused(string suffix)
    {
        using var temp = new TempDirectory();
        var model = CopyOfFixture(temp, "qwen2");
        var before = Directory.GetFiles(model).ToDictionary(f => f, File.ReadAllBytes);

        var run = Export(model, model + suffix, "--torch_dtype", "bfloat16");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--output_dir", Assert.Single(run.StderrLines));
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), Directory.GetFiles(model).Order(StringComparer.Ordinal));
        foreach (var (file, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(file));
    }

    [Fact]
    public void ABadShardSizeIsRefusedByValue()
    {
        using var temp = new TempDirectory();
        var output = temp.File("out");

        var run = Export(CliRun.Fixture("qwen2"), output, "--max_shard_size", "5XB");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("'5XB'", Assert.Single(run.StderrLines));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void OutputDirIsRequired()
    {
        var run = CliRun.Of("export", "--model", CliRun.Fixture("qwen2"), "--device", "cpu");

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Stdout);
        Assert.Contains("--output_dir", Assert.Single(run.StderrLines));
    }
}
