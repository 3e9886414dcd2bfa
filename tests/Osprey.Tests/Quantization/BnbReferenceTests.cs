using System.Diagnostics;
using System.Text.Json;
using Osprey.Models;
using Osprey.Quantization;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// bitsandbytes' formats against tools/quant_reference.py, an implementation of the published algorithms that is not
/// Osprey's: every fixture family quantized at load and saved must hold, code for code, the packed bytes, absmax,
/// nested absmax, quant maps and quant state the reference computes from the same dense weights; the reference's
/// dequantized weights written out as a float32 folder must give the quantized model's logits (≤ 1e-5); and the saved
/// folder must load back to the same logits.
/// </summary>
public sealed class BnbReferenceTests
{
    public static TheoryData<string, int, string, bool> Cases()
    {
        var data = new TheoryData<string, int, string, bool>();
        foreach (var family in new[] { "llama", "llama3", "qwen2", "qwen3", "mistral", "phi3", "gemma2", "gemma3_text" }) data.Add(family, 4, "nf4", true);
        data.Add("qwen2", 4, "fp4", false);
        data.Add("phi3", 4, "fp4", true);
        data.Add("qwen2", 8, "nf4", false);
        data.Add("gemma2", 8, "nf4", false);
        return data;
    }

    static ModelLoadOptions Load(QuantizationOptions quantization) =>
        new() { Device = DeviceSpec.Cpu, DType = "float32", Notice = TextWriter.Null, Quantization = new BnbLoader(quantization) };

    static Tensor Logits(CausalLM model)
    {
        using var _ = no_grad();
        using var ids = tensor(new long[] { 1, 5, 17, 42, 99, 3, 7, 200, 11, 64, 128, 2 }, dtype: ScalarType.Int64).view(2, 6);
        return model.Forward(ids);
    }

    internal static string Python(params string[] args)
    {
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(TestPaths.RepoRoot, "tools", "quant_reference.py"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"quant_reference.py {string.Join(" ", args)} failed: {stderr}");
        return stdout.Result;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SavedTensorsMatchTheReferenceAndLogitsMatchItsDequantizedWeights(string family, int bits, string type, bool doubleQuant)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var temp = new TempDirectory();
        var fixture = Path.Combine(TestPaths.Fixtures, "parity", family);
        var options = new QuantizationOptions { QuantMethod = "bnb", QuantBits = bits, Bnb4BitQuantType = type, Bnb4BitUseDoubleQuant = doubleQuant };
        using var quantized = CausalLM.Load(fixture, Load(options));
        Assert.True(quantized.QuantizedLayerCount >= 4 * quantized.Spec.Layers.Count, $"{family}: only {quantized.QuantizedLayerCount} layers quantized");
        using var logits = Logits(quantized);
        var qdir = temp.File("q");
        quantized.Save(qdir, long.MaxValue);

        using (var check = JsonDocument.Parse(Python("check", fixture, qdir)))
        {
            var failures = check.RootElement.GetProperty("failures").EnumerateArray().Select(f => f.GetString()).ToList();
            Assert.True(failures.Count == 0, $"{family} {type}: differs from the reference:\n{string.Join("\n", failures)}");
            Assert.Equal(quantized.QuantizedLayerCount, check.RootElement.GetProperty("layers").GetInt32());
            Assert.True(check.RootElement.GetProperty("nested_map_max_rel_diff").GetDouble() <= 1e-6);
        }

        Python("dequantize", qdir, temp.File("dense"));
        using (var dense = CausalLM.Load(temp.File("dense"), CPU, ScalarType.Float32))
        using (var expected = Logits(dense))
        {
            Assert.Equal(0, dense.QuantizedLayerCount);
            var diff = (logits - expected).abs().max().item<float>();
            Assert.True(diff <= 1e-5f, $"{family} {bits}-bit {type}: max |Δlogit| vs the reference's dequantized float32 weights = {diff:E3}");
        }

        // The saved folder is read as it is stored (no flags): the same layers, the same logits.
        using var reloaded = CausalLM.Load(qdir, Load(new QuantizationOptions()));
        Assert.Equal(quantized.QuantizedLayerCount, reloaded.QuantizedLayerCount);
        using var again = Logits(reloaded);
        Assert.True(again.equal(logits).all().item<bool>(), $"{family}: the saved quantized folder gives other logits");
    }

    [Fact]
    public void QuantizationConfigIsTransformersBitsAndBytesConfig()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var temp = new TempDirectory();
        using var model = CausalLM.Load(Path.Combine(TestPaths.Fixtures, "parity", "qwen2"), Load(new QuantizationOptions { QuantMethod = "bnb", QuantBits = 4 }));
        model.Save(temp.Path, long.MaxValue);
        using var doc = JsonDocument.Parse(File.ReadAllText(temp.File("config.json")));
        var qc = doc.RootElement.GetProperty("quantization_config");
        Assert.Equal("bitsandbytes", qc.GetProperty("quant_method").GetString());
        Assert.True(qc.GetProperty("load_in_4bit").GetBoolean());
        Assert.Equal("nf4", qc.GetProperty("bnb_4bit_quant_type").GetString());
        Assert.True(qc.GetProperty("bnb_4bit_use_double_quant").GetBoolean());
        using var file = global::Osprey.Io.SafetensorsFile.Open(temp.File("model.safetensors"));
        var names = file.Entries.ToDictionary(e => e.Name);
        var w = names["model.layers.0.mlp.up_proj.weight"];
        Assert.Equal("U8", w.DType);
        Assert.Equal(new long[] { 128 * 64 / 2, 1 }, w.Shape);
        Assert.Equal(new long[] { 128 * 64 / 64 }, names["model.layers.0.mlp.up_proj.weight.absmax"].Shape);
        Assert.Equal("U8", names["model.layers.0.mlp.up_proj.weight.absmax"].DType);
        Assert.Equal(new long[] { 256 }, names["model.layers.0.mlp.up_proj.weight.nested_quant_map"].Shape);
        Assert.Equal(new long[] { 16 }, names["model.layers.0.mlp.up_proj.weight.quant_map"].Shape);
        using var state = file.ReadTensor("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4");
        var json = System.Text.Encoding.UTF8.GetString(state.data<byte>().ToArray());
        Assert.StartsWith("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [128, 64], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ", json);
        Assert.True(names.ContainsKey("lm_head.weight") || model.Spec.TieWordEmbeddings);
        Assert.Equal("F32", names["model.embed_tokens.weight"].DType);
    }

    [Fact]
    public void UnknownQuantMethodInConfigIsOneSentenceNamingIt()
    {
        using var temp = new TempDirectory();
        var fixture = Path.Combine(TestPaths.Fixtures, "parity", "qwen2");
        foreach (var f in Directory.GetFiles(fixture)) File.Copy(f, temp.File(Path.GetFileName(f)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(temp.File("config.json")))!.AsObject();
        config["quantization_config"] = new System.Text.Json.Nodes.JsonObject { ["quant_method"] = "exl9", ["bits"] = 4 };
        File.WriteAllText(temp.File("config.json"), config.ToJsonString());
        var e = Assert.Throws<OspreyException>(() => CausalLM.Load(temp.Path, Load(new QuantizationOptions())));
        Assert.Contains("quant_method 'exl9' is not supported", e.Message);
        Assert.Contains("config.json", e.Message);
    }
}
