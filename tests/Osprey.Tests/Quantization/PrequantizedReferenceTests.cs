using System.Text.Json;
using Osprey.Io;
using Osprey.Models;
using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Training;
using Osprey.Training.Reporting;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// Pre-quantized GPTQ, AWQ (GEMM) and FP8 checkpoints against tools/quant_reference.py, which draws random codes, zero
/// points and scales, packs them in each method's published layout (bit streams built with Python integers) and writes
/// the weights those codes stand for, computed from the codes themselves, as a float32 folder. Osprey must dequantize
/// every layer to exactly those weights and give that folder's logits (≤ 1e-5).
/// </summary>
public sealed class PrequantizedReferenceTests
{
    public static TheoryData<string, string, string> Cases() => new()
    {
        { "gptq", "llama3", "bits=4 group_size=32 desc_act=0 sym=1 format=gptq" },
        { "gptq", "qwen2", "bits=3 group_size=32 desc_act=1 sym=0 format=gptq" },
        { "gptq", "qwen3", "bits=2 group_size=-1 desc_act=0 sym=0 format=gptq_v2" },
        { "gptq", "mistral", "bits=8 group_size=32 desc_act=1 sym=0 format=gptq_v2" },
        { "gptq", "phi3", "bits=4 group_size=64 desc_act=1 sym=0 format=gptq" },
        { "gptq", "gemma2", "bits=3 group_size=-1 desc_act=0 sym=1 format=gptq_v2" },
        { "gptq", "gemma3_text", "bits=2 group_size=32 desc_act=1 sym=1 format=gptq" },
        { "gptq", "llama", "bits=8 group_size=64 desc_act=0 sym=1 format=gptq" },
        { "awq", "llama3", "group_size=32" },
        { "awq", "qwen2", "group_size=64" },
        { "awq", "phi3", "group_size=32" },
        { "fp8", "qwen3", "block=128x128" },
        { "fp8", "llama3", "block=32x48" },
        { "fp8", "qwen2", "" },
        { "fp8", "gemma2", "block=16x32" },
    };

    internal static ModelLoadOptions Load(QuantizationOptions? options = null)
    {
        var o = options ?? new QuantizationOptions();
        return new() { Device = DeviceSpec.Cpu, DType = "float32", Notice = TextWriter.Null, Quantization = new PrequantizedLoader(o, new BnbLoader(o)) };
    }

    static Tensor Logits(CausalLM model)
    {
        using var _ = no_grad();
        using var ids = tensor(new long[] { 1, 5, 17, 42, 99, 3, 7, 200, 11, 64, 128, 2 }, dtype: ScalarType.Int64).view(2, 6);
        return model.Forward(ids);
    }

    internal static int Pack(string method, string source, string qdir, string dense, string options)
    {
        var output = BnbReferenceTests.Python(["pack", method, source, qdir, dense, .. options.Split(' ', StringSplitOptions.RemoveEmptyEntries)]);
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.GetProperty("layers").GetInt32();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DequantizedWeightsAndLogitsMatchTheReference(string method, string family, string options)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var temp = new TempDirectory();
        var layers = Pack(method, Path.Combine(TestPaths.Fixtures, "parity", family), temp.File("q"), temp.File("dense"), options);

        using var quantized = CausalLM.Load(temp.File("q"), Load());
        Assert.Equal(layers, quantized.QuantizedLayerCount);
        using (var reference = SafetensorsCheckpoint.Open(temp.File("dense")))
            foreach (var (path, layer) in quantized.LinearLayers().Where(l => l.Layer.Base is not null))
            {
                using var got = layer.DenseWeight();
                using var want = reference.ReadTensor(path + ".weight");
                Assert.True(got.shape.SequenceEqual(want.shape) && got.equal(want).all().item<bool>(), $"{method} {family} {options}: {path} dequantizes to other values than the reference (max |Δ| {(got - want).abs().max().item<float>():E3})");
            }

        using var logits = Logits(quantized);
        using (var dense = CausalLM.Load(temp.File("dense"), CPU, ScalarType.Float32))
        using (var expected = Logits(dense))
        {
            var diff = (logits - expected).abs().max().item<float>();
            Assert.True(diff <= 1e-5f, $"{method} {family} {options}: max |Δlogit| vs the reference's dequantized float32 weights = {diff:E3}");
        }

        // GPTQ, AWQ and FP8 folders save as they were read: the same layers, the same logits.
        quantized.Save(temp.File("saved"), long.MaxValue);
        using var reloaded = CausalLM.Load(temp.File("saved"), Load());
        Assert.Equal(layers, reloaded.QuantizedLayerCount);
        using var again = Logits(reloaded);
        Assert.True(again.equal(logits).all().item<bool>(), $"{method} {family}: the saved folder gives other logits");
    }

    [Fact]
    public void E4M3TableHoldsTheFormatsHandComputedValues()
    {
        // float8_e4m3fn by hand: 0x38 = 2^(7-7)·1 = 1, 0x7E = 2^8·1.75 = 448 (the largest), 0x01 = 2^-6·1/8 (the smallest
        // subnormal), 0x08 = 2^-6 (the smallest normal), 0xC0 = -2^(8-7) = -2, 0x80 = -0, 0x7F NaN.
        var t = Fp8Weight.E4M3Table;
        Assert.Equal(1f, t[0x38]);
        Assert.Equal(448f, t[0x7E]);
        Assert.Equal(1f / 512, t[0x01]);
        Assert.Equal(1f / 64, t[0x08]);
        Assert.Equal(-2f, t[0xC0]);
        Assert.True(float.IsNegative(t[0x80]) && t[0x80] == 0);
        Assert.True(float.IsNaN(t[0x7F]) && float.IsNaN(t[0xFF]));
        Assert.Equal(0.1015625f, t[0x1D]); // 2^(3-7)·(1 + 5/8)
    }

    static string WithConfig(TempDirectory temp, string method, string options, Action<System.Text.Json.Nodes.JsonObject> edit)
    {
        Pack(method, Path.Combine(TestPaths.Fixtures, "parity", "qwen2"), temp.File("q"), temp.File("dense"), options);
        var file = temp.File("q/config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        edit(config["quantization_config"]!.AsObject());
        File.WriteAllText(file, config.ToJsonString());
        return temp.File("q");
    }

    [Fact]
    public void UnsupportedVariantsAreOneSentenceNamingThem()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using (var temp = new TempDirectory())
        {
            var dir = WithConfig(temp, "awq", "group_size=32", c => c["version"] = "gemv");
            var e = Assert.Throws<OspreyException>(() => CausalLM.Load(dir, Load()));
            Assert.Contains("AWQ version 'gemv' is not supported", e.Message);
            e = Assert.Throws<OspreyException>(() => CausalLM.Load(dir, Load(new QuantizationOptions { QuantMethod = "bnb", QuantBits = 4 })));
            Assert.Contains("already quantized (awq)", e.Message);
        }
        using (var temp = new TempDirectory())
        {
            var dir = WithConfig(temp, "gptq", "bits=4 group_size=32", c => c["quant_method"] = "hqq");
            var e = Assert.Throws<OspreyException>(() => CausalLM.Load(dir, Load()));
            Assert.Contains("quant_method 'hqq' is not supported", e.Message);
            Assert.Contains("config.json", e.Message);
        }
        using (var temp = new TempDirectory())
        {
            // A checkpoint packed with 4 bits whose config says 3: the shapes cannot fit, and the error says what to check.
            var dir = WithConfig(temp, "gptq", "bits=4 group_size=32", c => c["bits"] = 8);
            var e = Assert.Throws<OspreyException>(() => CausalLM.Load(dir, Load()));
            Assert.Contains("do not fit 8-bit GPTQ packing", e.Message);
        }
    }

    [Fact]
    public void LoraOnAGptqBaseLowersTheLoss()
    {
        using var temp = new TempDirectory();
        Pack("gptq", TestDemoModel.Folder, temp.File("q"), temp.File("dense"), "bits=4 group_size=32 desc_act=1 sym=0");
        foreach (var f in Directory.GetFiles(TestDemoModel.Folder).Where(f => Path.GetFileName(f) is not ("model.safetensors" or "config.json")))
            File.Copy(f, temp.File("q/" + Path.GetFileName(f)));
        var run = CliRun.Of("sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", temp.File("q"),
            "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl"), "--max_steps", "3", "--logging_steps", "1",
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--lora_rank", "8", "--output_dir", temp.File("run"), "--add_version", "false");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("GPTQ 4-bit layers", run.Stderr);
        var losses = TrainingLog.ReadJsonl(Path.Combine(temp.File("run"), "logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.True(losses.Length >= 2 && losses[^1] < losses[0], $"the loss should fall: {string.Join(", ", losses)}");
    }
}
