using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// OSPREY_CPU_INT8_HEAD's path (<c>CausalLM.UseInt8Head</c>), on the tiny qwen2 fixture in bfloat16 (tied embeddings):
/// its logits equal the head's published row-wise int8 formula worked here in float64 — codes = round(w / s) with
/// s = max|w| / 127 per vocabulary row, logit = Σ h · code · s — within bfloat16's rounding, and they are not the dense
/// head's logits (the path really ran).
/// </summary>
public sealed class CpuInt8HeadTests
{
    [Fact]
    public void Int8HeadLogits_EqualTheRowWiseInt8FormulaOverTheFinalHiddenStates()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        Assert.Null(CpuPackedMatmul.Unavailable());
        using var model = CausalLM.Load(CliRun.Fixture("qwen2"), CPU, ScalarType.BFloat16);
        Assert.True(model.Spec.TieWordEmbeddings);
        using var _ = no_grad();
        using var ids = tensor(new long[] { 5, 17, 42, 99, 3, 250, 7, 61 }, [1, 8]);

        using var dense = model.Forward(ids).to_type(ScalarType.Float64);
        model.UseInt8Head = true;
        using var int8 = model.Forward(ids).to_type(ScalarType.Float64);

        // The reference: float64 from the final hidden states and the embedding matrix, by the formula alone.
        using var hidden = model.HiddenStates(ids).to_type(ScalarType.Float64).reshape(-1, model.Spec.HiddenSize);
        var weight = model.BaseParameters().Single(p => p.Name == "model.embed_tokens.weight").Tensor;
        using var w = weight.to_type(ScalarType.Float64);
        using var scale = w.abs().amax([1]).clamp_min(1e-12).div(127); // an all-zero row keeps zero codes
        using var codes = w.div(scale.unsqueeze(1)).round().clamp(-127, 127);
        using var expected = hidden.matmul(codes.t()).mul(scale.to_type(ScalarType.BFloat16).to_type(ScalarType.Float64));

        using var actual = int8.reshape(-1, model.Spec.VocabSize);
        var range = expected.abs().max().item<double>();
        var error = (actual - expected).abs().max().item<double>();
        Assert.True(error <= 1e-2 * range, $"int8 head off the formula by {error} (logit range {range})");
        var fromDense = (actual - dense.reshape(-1, model.Spec.VocabSize)).abs().max().item<double>();
        Assert.True(fromDense > 0, "the int8 head gave the dense logits exactly: it did not run");
    }
}
