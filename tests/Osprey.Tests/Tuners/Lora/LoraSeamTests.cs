using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Tuners.Lora;

/// <summary>
/// LoRA plugged into the model from outside, through the linear layers' adapter seam, keeps PEFT's state-dict keys:
/// <c>&lt;path&gt;.lora_A.weight</c>, <c>.lora_B.weight</c> and DoRA's <c>.lora_magnitude_vector</c> beside the weight,
/// and the model tells them apart from its own tensors without knowing their names.
/// </summary>
public sealed class LoraSeamTests
{
    public LoraSeamTests() => TorchRuntime.Initialize(DeviceSpec.Cpu);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ALayerWithLoraHasPeftKeys(bool dora)
    {
        using var layer = new LinearLayer(6, 5, true, ScalarType.Float32, CPU);
        using (no_grad()) layer.Weight.fill_(0.25f);
        using var init = new Generator(3, CPU);
        var lora = LoraWeights.AttachTo(layer, new LoraLayerSettings(2, 4.0, 0, dora), init, () => null);
        string[] adapterKeys = dora ? ["lora_A.weight", "lora_B.weight", "lora_magnitude_vector"] : ["lora_A.weight", "lora_B.weight"];
        Assert.Equal(new[] { "bias", "weight" }.Concat(adapterKeys).Order(StringComparer.Ordinal), layer.state_dict().Keys.Order(StringComparer.Ordinal));
        Assert.Equal(adapterKeys, layer.AdapterKeys());
        Assert.Equal(adapterKeys, lora.Parameters().Select(p => p.Name));
        Assert.Equal([2L, 6L], layer.state_dict()["lora_A.weight"].shape);
        Assert.Equal([5L, 2L], layer.state_dict()["lora_B.weight"].shape);
        if (dora) Assert.True(layer.state_dict()["lora_magnitude_vector"].allclose(full(5, 0.25f * MathF.Sqrt(6))));
        Assert.Throws<InvalidOperationException>(() => LoraWeights.AttachTo(layer, new LoraLayerSettings(2, 4.0, 0, dora), init, () => null));
    }

    [Fact]
    public void AModelWithLoraHasPeftKeysAndKeepsThemOutOfItsCheckpoint()
    {
        using var model = CausalLM.Load(CliRun.Fixture("qwen2"), CPU, ScalarType.Float32);
        var baseKeys = model.state_dict().Keys.ToHashSet();
        var adapted = model.AttachLora(new LoraOptions { Rank = 4, TargetModules = ["q_proj", "down_proj"], UseDora = true }, seed: 1);
        Assert.Contains("model.layers.0.self_attn.q_proj", adapted);
        var added = model.state_dict().Keys.Where(k => !baseKeys.Contains(k)).Order(StringComparer.Ordinal).ToList();
        var expected = adapted.SelectMany(p => new[] { p + ".lora_A.weight", p + ".lora_B.weight", p + ".lora_magnitude_vector" }).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, added);
        Assert.Equal(expected, model.LoraParameters().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.All(added, k => Assert.True(CausalLM.IsAdapterKey(k), k));
        Assert.DoesNotContain(baseKeys, CausalLM.IsAdapterKey);
        Assert.Equal(baseKeys.Order(StringComparer.Ordinal), model.CheckpointTensors().Keys.Order(StringComparer.Ordinal));
        Assert.Equal(model.named_parameters().Select(p => p.name).Where(n => !CausalLM.IsAdapterKey(n)), model.BaseParameters().Select(p => p.Name));
        Assert.True(model.HasLora);
    }
}
