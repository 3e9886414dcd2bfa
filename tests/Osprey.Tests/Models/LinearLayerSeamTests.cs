using Osprey.Models.Blocks;
using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// The seam through which code outside the model changes a <see cref="LinearLayer"/>: an adapter's tensors are
/// registered under the names it gives (state-dict keys beside the weight) and it wraps the base output; a delta adds
/// to the output, also to a layer's slice of a fused projection. The adapters here know nothing of LoRA.
/// </summary>
public sealed class LinearLayerSeamTests
{
    public LinearLayerSeamTests() => TorchRuntime.Initialize(DeviceSpec.Cpu);

    /// <summary>A scale module plus a bias-like parameter: y' = y · scale + shift.</summary>
    sealed class ScaleShift(long outFeatures) : ILinearAdapter
    {
        public Scale ScaleModule { get; } = new(outFeatures);
        public Parameter Shift { get; } = new(full(outFeatures, 0.5f), requires_grad: true);
        public IEnumerable<(string Name, nn.Module Module)> Modules => [("scaler", ScaleModule)];
        public IEnumerable<(string Name, Parameter Parameter)> LayerParameters => [("shift_vector", Shift)];
        public Tensor Forward(Tensor x, Tensor baseOutput, Tensor weight, Tensor? bias, bool training) => baseOutput * ScaleModule.Weight + Shift;
    }

    sealed class Scale : nn.Module
    {
#pragma warning disable IDE0044
        Parameter weight;
#pragma warning restore IDE0044
        public Scale(long n) : base("Scale")
        {
            weight = new Parameter(full(n, 2f), requires_grad: true);
            RegisterComponents();
        }

        public Parameter Weight => weight;
    }

    sealed class AddOnes(bool active) : ILinearDelta
    {
        public bool Active => active;
        public void AddTo(Tensor x, Tensor y) => y.add_(1);
    }

    static LinearLayer Layer(bool hasBias = true)
    {
        var layer = new LinearLayer(3, 4, hasBias, ScalarType.Float32, CPU);
        using var _ = no_grad();
        using var g = new Generator(1, CPU);
        layer.Weight.copy_(rand(4, 3, generator: g));
        layer.Bias?.copy_(rand(4, generator: g));
        return layer;
    }

    [Fact]
    public void AnAdapterRegistersItsTensorsUnderItsOwnNamesAndWrapsTheOutput()
    {
        using var layer = Layer();
        using var x = ones(2, 3);
        using var plain = layer.forward(x);
        Assert.Empty(layer.AdapterKeys());
        var adapter = new ScaleShift(4);
        layer.Attach(adapter);
        Assert.Equal(["bias", "scaler.weight", "shift_vector", "weight"], layer.state_dict().Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["scaler.weight", "shift_vector"], layer.AdapterKeys());
        Assert.Same(adapter, layer.Adapter);
        using var adapted = layer.forward(x);
        Assert.True(adapted.allclose(plain * 2 + 0.5f));
        Assert.Throws<InvalidOperationException>(() => layer.Attach(new ScaleShift(4)));
        Assert.Throws<InvalidOperationException>(() => layer.SetDelta(new AddOnes(true)));
    }

    [Fact]
    public void ADeltaAddsToTheOutputOnlyWhileActiveAndExcludesAnAdapter()
    {
        using var layer = Layer(hasBias: false);
        using var x = ones(1, 2, 3);
        using var plain = layer.forward(x);
        layer.SetDelta(new AddOnes(false));
        Assert.False(layer.DeltaActive);
        using (var idle = layer.forward(x)) Assert.True(idle.allclose(plain, rtol: 0, atol: 0));
        layer.SetDelta(new AddOnes(true));
        Assert.True(layer.DeltaActive);
        using (var added = layer.forward(x)) Assert.True(added.allclose(plain + 1));
        Assert.Throws<InvalidOperationException>(() => layer.Attach(new ScaleShift(4)));
        Assert.Empty(layer.AdapterKeys());
        Assert.Equal(["weight"], layer.state_dict().Keys);
        layer.SetDelta(null);
        Assert.False(layer.DeltaActive);
    }

    [Fact]
    public void FusedPartsTakeTheirDeltaOnTheirSliceOfTheOneOutput()
    {
        var fused = new FusedProjection(3, [2, 4], false, ScalarType.Float32, CPU);
        using (no_grad()) fused.Weight.copy_(arange(18, dtype: ScalarType.Float32).reshape(6, 3) / 10);
        using var x = ones(1, 1, 3);
        using var plain = fused.Forward(x);
        fused.Parts[1].SetDelta(new AddOnes(true));
        Assert.True(fused.Usable); // a delta keeps the one matrix multiply
        using var y = fused.Forward(x);
        Assert.True(y.narrow(-1, 0, 2).allclose(plain.narrow(-1, 0, 2), rtol: 0, atol: 0));
        Assert.True(y.narrow(-1, 2, 4).allclose(plain.narrow(-1, 2, 4) + 1));
        fused.Parts[1].SetDelta(null);
        fused.Parts[0].Attach(new ScaleShift(2));
        Assert.False(fused.Usable); // an adapter wraps its part's output: the parts run separately
    }
}
