using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// <c>osprey export --quant_method gptq|awq|fp8</c> against tools/calib_reference.py (NumPy, run with Debian's
/// /usr/bin/python3): its unpacker of the published layouts (GPTQModel/AutoGPTQ v1, AutoAWQ GEMM, e4m3 with
/// weight_scale / weight_scale_inv) must read Osprey's exports to exactly the weights Osprey reloads, and the logits of
/// that dequantized float32 folder must equal those of the reloaded export; its GPTQ, written from Frantar et al. 2022,
/// must quantize a small random problem as Osprey's does; and on held-out activations GPTQ and AWQ must beat the
/// reference's round-to-nearest at the same bits and group size.
/// </summary>
public sealed class CalibratedExportTests
{
    static string Reference(params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(TestPaths.RepoRoot, "tools", "calib_reference.py"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"calib_reference.py {string.Join(" ", args)} failed (needs python3-numpy): {stderr}");
        return stdout.Result;
    }

    static void WriteDataset(string path)
    {
        using var w = new StreamWriter(path);
        for (var i = 0; i < 12; i++)
        {
            var row = new JsonObject
            {
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = $"Question {i}: what is {i} plus {3 * i}? Then name {i % 5 + 2} birds." },
                    new JsonObject { ["role"] = "assistant", ["content"] = $"{4 * i}. Robin, wren, owl, kite and heron sing at dawn ({i})." }),
            };
            w.WriteLine(row.ToJsonString());
        }
    }

    static Tensor Logits(CausalLM model)
    {
        using var _ = no_grad();
        using var ids = tensor(new long[] { 1, 5, 17, 42, 99, 3, 7, 200, 11, 64, 128, 2 }, dtype: ScalarType.Int64).view(2, 6);
        return model.Forward(ids);
    }

    public static TheoryData<string, string, string> Exports() => new()
    {
        { "gptq", "qwen3", "--quant_bits 4 --group_size 32 --gptq_desc_act true" },
        { "gptq", "phi3", "--quant_bits 8 --group_size -1 --gptq_sym false" },
        { "awq", "gemma2", "--quant_bits 4 --group_size 32" },
        { "fp8", "qwen2", "--fp8_scheme tensor" },
        { "fp8", "phi3", "--fp8_scheme channel" },
        { "fp8", "qwen3", "--fp8_scheme block" },
    };

    [Theory]
    [MemberData(nameof(Exports))]
    public void ExportReloadsToTheNumPyDequantizationOfItsPublishedLayout(string method, string family, string flags)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var temp = new TempDirectory();
        var fixture = CliRun.Fixture(family);
        var args = new List<string> { "export", "--device", "cpu", "--model", fixture, "--quant_method", method, "--output_dir", temp.File("q") };
        args.AddRange(flags.Split(' '));
        if (method != "fp8")
        {
            WriteDataset(temp.File("calib.jsonl"));
            args.AddRange(["--dataset", temp.File("calib.jsonl"), "--quant_n_samples", "2", "--max_length", "160", "--load_from_cache_file", "false"]);
        }
        var run = CliRun.Of([.. args]);
        Assert.True(run.ExitCode == 0, run.ToString());

        var config = JsonNode.Parse(File.ReadAllText(temp.File("q/config.json")))!["quantization_config"]!;
        var expectedMethod = flags.Contains("channel", StringComparison.Ordinal) ? "fbgemm_fp8" : method;
        Assert.Equal(expectedMethod, config["quant_method"]!.GetValue<string>());
        if (method == "gptq") Assert.Equal("gptq", config["checkpoint_format"]!.GetValue<string>());
        if (method == "awq") Assert.Equal("gemm", config["version"]!.GetValue<string>());

        Reference("unpack", temp.File("q"), temp.File("dense"));
        using var quantized = CausalLM.Load(temp.File("q"), PrequantizedReferenceTests.Load());
        using var dense = CausalLM.Load(temp.File("dense"), CPU, ScalarType.Float32);
        using var original = CausalLM.Load(fixture, CPU, ScalarType.Float32);
        Assert.Equal(original.LinearLayers().Count(l => l.Path.StartsWith("model.layers.", StringComparison.Ordinal)), quantized.QuantizedLayerCount);
        var originals = original.LinearLayers().ToDictionary(l => l.Path, l => l.Layer);
        using (var reference = SafetensorsCheckpoint.Open(temp.File("dense")))
            foreach (var (path, layer) in quantized.LinearLayers().Where(l => l.Layer.Base is not null))
            {
                using var got = layer.DenseWeight();
                using var want = reference.ReadTensor(path + ".weight");
                Assert.True(got.equal(want).all().item<bool>(), $"{method} {family}: {path} reloads to other values than NumPy unpacks (max |Δ| {(got - want).abs().max().item<float>():E3})");
                if (method == "fp8")
                {
                    // e4m3 keeps 3 mantissa bits: each weight within 1/16 of itself, plus the subnormal step of its scale.
                    using var w = originals[path].DenseWeight();
                    var worst = ((w - want).abs() - w.abs() / 16).max().item<float>();
                    var floor = w.abs().max().item<float>() / 448 / 8;
                    Assert.True(worst <= floor, $"{family}: {path} is not rounded to the nearest e4m3 value (excess {worst:E3})");
                }
            }

        using var logits = Logits(quantized);
        using var expected = Logits(dense);
        var diff = (logits - expected).abs().max().item<float>();
        Assert.True(diff <= 1e-3f, $"{method} {family}: max |Δlogit| vs NumPy's dequantized folder = {diff:E3}");

        if (method == "gptq")
        {
            // Every projection of every layer beats round-to-nearest on the held-out sample (the table export prints).
            var table = run.StderrLines.Where(l => l.Contains("layers below", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(table);
            foreach (var line in table) Assert.Matches(@"\((\d+)/\1 layers below\)", line);
        }
    }

    // --- GPTQ against the NumPy reference, and GPTQ/AWQ against round-to-nearest -------------------------------------

    /// <summary>Activations shaped like a transformer's: correlated channels, a few of them outliers ×8.</summary>
    static Tensor Activations(long n, long inFeatures, Generator g)
    {
        var z = randn(n, inFeatures, generator: g);
        var mix = randn(inFeatures, inFeatures, generator: g).div(Math.Sqrt(inFeatures)).add(eye(inFeatures));
        var x = z.matmul(mix);
        var scale = ones(inFeatures);
        for (long c = 0; c < inFeatures; c += 37) scale[c] = 8;
        return x.mul(scale);
    }

    static void WriteF32(string path, Tensor t)
    {
        using var c = t.to_type(ScalarType.Float32).contiguous();
        File.WriteAllBytes(path, MemoryMarshal.AsBytes(c.data<float>().ToArray().AsSpan()).ToArray());
    }

    static Tensor Read(string path, ScalarType type, params long[] shape)
    {
        var bytes = File.ReadAllBytes(path);
        return type switch
        {
            ScalarType.Float64 => tensor(MemoryMarshal.Cast<byte, double>(bytes).ToArray()).view(shape),
            ScalarType.Int32 => tensor(MemoryMarshal.Cast<byte, int>(bytes).ToArray()).view(shape),
            _ => tensor(MemoryMarshal.Cast<byte, float>(bytes).ToArray()).view(shape),
        };
    }

    static double OutputError(Tensor x, Tensor w, Tensor q)
    {
        using var scope = NewDisposeScope();
        return x.matmul(w.sub(q).t()).square().sum().item<float>();
    }

    [Theory]
    [InlineData(4, 32, true, false)]
    [InlineData(4, -1, false, true)]
    [InlineData(8, 64, true, true)]
    [InlineData(2, 128, false, false)]
    public void GptqMatchesTheNumPyReferenceAndBeatsRoundToNearest(int bits, int group, bool sym, bool descAct)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var scope = NewDisposeScope();
        using var temp = new TempDirectory();
        var g = new Generator((ulong)(bits * 100 + group + (sym ? 1 : 0) + 1000), CPU);
        const long rows = 48, inFeatures = 256;
        var w = randn(rows, inFeatures, generator: g).mul(0.05);
        var x = Activations(768, inFeatures, g);
        var (cal, held) = (x.narrow(0, 0, 512), x.narrow(0, 512, 256));
        WriteF32(temp.File("w.f32"), w);
        WriteF32(temp.File("x.f32"), cal);
        Reference("gptq", temp.Path, $"{rows}", $"{inFeatures}", $"{bits}", $"{group}", sym ? "1" : "0", descAct ? "1" : "0");
        var h = Read(temp.File("h.f64"), ScalarType.Float64, inFeatures, inFeatures);

        using var result = GptqSolver.Solve(w, h, new GptqSettings(bits, group, sym, descAct));
        var refCodes = Read(temp.File("ref_codes.i32"), ScalarType.Int32, rows, inFeatures);
        var refQ = Read(temp.File("ref_q.f32"), ScalarType.Float32, rows, inFeatures);
        var refG = Read(temp.File("ref_gidx.i32"), ScalarType.Int32, inFeatures);
        Assert.True(result.GroupIndex.equal(refG).all().item<bool>(), "g_idx differs from the reference");
        // Float64 both sides; a code may flip only where a value sits on a rounding boundary to ~1e-12.
        var same = result.Codes.eq(refCodes).to_type(ScalarType.Float32).mean().item<float>();
        Assert.True(same >= 0.995f, $"only {same:P2} of the codes equal the NumPy GPTQ's");
        var close = (result.Dequantized - refQ).abs().le(1e-6).to_type(ScalarType.Float32).mean().item<float>();
        Assert.True(close >= 0.995f, $"only {close:P2} of the dequantized weights equal the NumPy GPTQ's");

        var rtn = Read(temp.File("ref_rtn.f32"), ScalarType.Float32, rows, inFeatures);
        double gptqError = OutputError(held, w, result.Dequantized), rtnError = OutputError(held, w, rtn);
        Assert.True(gptqError < rtnError, $"{bits}-bit group {group}: GPTQ's held-out output error {gptqError:E3} is not below round-to-nearest's {rtnError:E3}");
    }

    [Theory]
    [InlineData(64, 128, 32)]
    [InlineData(48, 256, 64)]
    [InlineData(32, 256, 128)]
    public void AwqBeatsRoundToNearestOnHeldOutActivations(long rows, long inFeatures, int group)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var scope = NewDisposeScope();
        using var temp = new TempDirectory();
        var g = new Generator((ulong)(rows + inFeatures + group), CPU);
        var w = randn(rows, inFeatures, generator: g).mul(0.05);
        var x = Activations(768, inFeatures, g);
        var (cal, held) = (x.narrow(0, 0, 512), x.narrow(0, 512, 256));
        WriteF32(temp.File("w.f32"), w);
        Reference("awq_rtn", temp.Path, $"{rows}", $"{inFeatures}", $"{group}");
        var rtn = Read(temp.File("ref_rtn.f32"), ScalarType.Float32, rows, inFeatures);

        // AWQ as the export runs it: scales from mean |x|, W·diag(s) clipped and quantized, inputs divided by s.
        var s = AwqSearch.SearchScales(w, cal, cal.abs().mean([0]), group);
        var scaled = w.mul(s);
        var clipped = AwqSearch.Clip(scaled, AwqSearch.SearchClip(scaled, cal.div(s), group), group);
        var (codes, scales, zeros, dq) = AwqSearch.Quantize(clipped, group);
        var awq = dq.div(s);
        double awqError = OutputError(held, w, awq), rtnError = OutputError(held, w, rtn);
        Assert.True(awqError < rtnError, $"AWQ's held-out output error {awqError:E3} is not below round-to-nearest's {rtnError:E3}");
        // The pack stores exactly those codes, scales and zero points: AutoAWQ's W = (q − z)·s per group.
        using var packed = AwqWeight.Pack(codes, scales, zeros, group, ScalarType.Float32);
        using var unpacked = packed.Dequantize();
        Assert.True((unpacked - dq).abs().max().item<float>() == 0, "the AWQ GEMM pack does not hold the quantized weights");
    }

    /// <summary>
    /// A calibrated export on a GPU keeps finished layers in host memory (<see cref="Osprey.Models.Blocks.ILinearBase.CopyTo"/>)
    /// and frees the device copy: the copy must own its tensors (it outlives the source) and hold the same weights.
    /// </summary>
    [Fact]
    public void PackedLayersCopiedToAnotherDeviceOutliveTheSourceUnchanged()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var scope = NewDisposeScope();
        var g = new Generator(11, CPU);
        var w = randn(96, 256, generator: g).mul(0.05);
        var (codes, scales, zeros, _) = AwqSearch.Quantize(w, 64);
        var actOrder = randperm(256, generator: g).div(64, rounding_mode: RoundingMode.floor).to_type(ScalarType.Int32);
        var gptq = new GptqResult(randint(0, 16, [96, 256], generator: g, dtype: ScalarType.Int32), full(4, 96, 1f / 64), full(4, 96, 8, dtype: ScalarType.Int32), actOrder, zeros_like(w));
        Osprey.Models.Blocks.ILinearBase[] sources =
        [
            AwqWeight.Pack(codes, scales, zeros, 64, ScalarType.Float32),
            GptqWeight.Pack(gptq, 4, ScalarType.Float32),
            Fp8Weight.Quantize(w, Fp8Scheme.Block, ScalarType.Float32),
        ];
        foreach (var source in sources)
        {
            var name = source.GetType().Name;
            var before = source.Dequantize();
            var stored = source.CheckpointTensors().ToDictionary(t => t.Name, t => t.Tensor.clone());
            using var copy = source.CopyTo(CPU);
            Assert.NotNull(copy);
            Assert.NotSame(source, copy);
            source.Dispose();
            Assert.True(Same(copy!.Dequantize(), before), $"{name}: the copy dequantizes to other weights");
            Assert.Equal(stored.Keys.Order(), copy.CheckpointTensors().Select(t => t.Name).Order());
            foreach (var (tensorName, t) in copy.CheckpointTensors())
                Assert.True(Same(t, stored[tensorName]), $"{name}: checkpoint tensor {tensorName} changed in the copy");
        }
        static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
    }

    [Fact]
    public void BadExportFlagsAreOneSentenceNamingTheFlag()
    {
        var fixture = CliRun.Fixture("qwen3");
        using var temp = new TempDirectory();
        var run = CliRun.Of("export", "--model", fixture, "--quant_method", "awq", "--quant_bits", "8", "--output_dir", temp.File("q"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--quant_method awq needs --quant_bits 4", run.Stderr);
        run = CliRun.Of("export", "--model", fixture, "--quant_method", "gptq", "--quant_bits", "4", "--output_dir", temp.File("q"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("needs calibration data; pass --dataset", run.Stderr);
        run = CliRun.Of("export", "--model", fixture, "--quant_method", "fp8", "--fp8_scheme", "row", "--output_dir", temp.File("q"));
        Assert.Contains("--fp8_scheme 'row' is not supported", run.Stderr);
        // The fixture's layers read 64 inputs: AWQ's default group of 128 cannot be whole.
        WriteDataset(temp.File("calib.jsonl"));
        run = CliRun.Of("export", "--model", fixture, "--quant_method", "awq", "--quant_bits", "4", "--dataset", temp.File("calib.jsonl"),
            "--quant_n_samples", "2", "--max_length", "160", "--load_from_cache_file", "false", "--output_dir", temp.File("q"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--group_size 128 does not divide the 64 inputs of model.layers.0.self_attn.q_proj", run.Stderr);
        Assert.Contains("(e.g. 64)", run.Stderr);
        run = CliRun.Of("infer", "--model", fixture, "--quant_method", "gptq", "--quant_bits", "4", "--input_ids", "1,2,3");
        Assert.Contains("writes a quantized checkpoint with osprey export", run.Stderr);
        Assert.False(Directory.Exists(temp.File("q")));
    }
}
