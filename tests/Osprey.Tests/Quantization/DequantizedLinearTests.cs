using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// Training on a quantized base goes through <see cref="DequantizedLinear"/>, which dequantizes in forward and again in
/// backward instead of letting autograd keep the dense weight. The reference is plain autograd on the same weights held
/// densely (nn.functional.linear, which saves W): the LoRA gradients must agree, and the dense copy forward made must not
/// be what backward reads.
/// </summary>
public sealed class DequantizedLinearTests
{
    public DequantizedLinearTests() => TorchRuntime.Initialize(DeviceSpec.Cpu);

    static readonly string[] AllLinear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>Every LoRA tensor set to seeded normal values (lora_B starts at zero, which would leave lora_A's gradient zero).</summary>
    static void Randomise(CausalLM model)
    {
        using var g = new Generator(11, CPU);
        using var _ = no_grad();
        foreach (var (_, p) in model.LoraParameters()) p.normal_(0, 0.1, g);
    }

    static Dictionary<string, Tensor> LoraGradients(CausalLM model)
    {
        foreach (var (_, p) in model.LoraParameters()) p.grad?.zero_(); // backward accumulates
        using (var ids = tensor(new long[] { 1, 5, 17, 42, 99, 3, 7, 200, 11, 64, 128, 2 }, dtype: ScalarType.Int64).view(2, 6))
        using (enable_grad())
        using (var logits = model.Forward(ids))
        using (var loss = logits.square().mean())
            loss.backward();
        return model.LoraParameters().ToDictionary(p => p.Name, p => p.Tensor.grad!.clone());
    }

    [Fact]
    public void LoraGradientsOnAQuantizedBaseEqualThoseOnItsDequantizedWeights()
    {
        var options = new ModelLoadOptions
        {
            Device = DeviceSpec.Cpu, DType = "float32", Notice = TextWriter.Null,
            Quantization = new BnbLoader(new QuantizationOptions { QuantMethod = "bnb", QuantBits = 4 }),
        };
        using var model = CausalLM.Load(CliRun.Fixture("qwen2"), options);
        Assert.True(model.QuantizedLayerCount > 0);
        model.AttachLora(new LoraOptions { Rank = 4, TargetModules = AllLinear, Dropout = 0 }, seed: 1); // no dropout: both passes must see the same network
        Randomise(model);
        var quantized = LoraGradients(model);
        Assert.Equal(model.QuantizedLayerCount, model.Dequantize()); // the same weights, now dense: plain autograd
        var dense = LoraGradients(model);
        Assert.Equal(dense.Keys.Order(), quantized.Keys.Order());
        foreach (var (name, reference) in dense)
        {
            Assert.True(reference.abs().max().item<float>() > 0, $"{name}: the reference gradient is zero, so the test would prove nothing");
            var diff = (quantized[name] - reference).abs().max().item<float>();
            Assert.True(diff <= 1e-6f, $"{name}: gradients differ by {diff}");
        }
    }

    /// <summary>A real 4-bit weight that keeps a handle on every dense copy it hands out, to probe what autograd saved.</summary>
    sealed class Recording(FourBitWeight inner) : ILinearBase
    {
        public List<Tensor> Issued { get; } = [];
        public long OutFeatures => inner.OutFeatures;
        public long InFeatures => inner.InFeatures;
        public ScalarType ComputeDType => inner.ComputeDType;
        public IEnumerable<(string Name, Tensor Tensor)> CheckpointTensors() => inner.CheckpointTensors();
        public Tensor Dequantize()
        {
            var w = inner.Dequantize();
            Issued.Add(w.alias().DetachFromDisposeScope()); // a view (it shares the version counter autograd checks for in-place changes), kept past backward's scope
            return w;
        }
        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public void BackwardDequantizesAgainInsteadOfKeepingTheForwardCopy()
    {
        using var g = new Generator(5, CPU);
        using var dense = randn([32, 64], generator: g);
        var recording = new Recording(FourBitWeight.Quantize(dense, FourBitType.Nf4, true, ScalarType.Float32));
        using var layer = new LinearLayer(64, 32, true, ScalarType.Float32, CPU);
        using (no_grad()) layer.Bias!.normal_(0, 1, g);
        layer.UseBase(recording);
        LoraWeights.AttachTo(layer, new LoraLayerSettings(4, 2.0, 0, false), g, () => null);
        using var x = randn([3, 64], generator: g).requires_grad_(true);

        using (var y = layer.forward(x))
        using (var loss = y.square().sum())
        {
            Assert.Single(recording.Issued); // plain LoRA does not read the weight: one dequantization
            // Spoil the forward copy in place. Had autograd saved it, backward would refuse (a saved tensor was modified).
            using (no_grad()) recording.Issued[0].zero_();
            loss.backward();
        }
        Assert.Equal(2, recording.Issued.Count); // backward dequantized its own copy

        // Reference: plain autograd on the dense dequantized weight, LoRA added by hand.
        var lora = (LoraWeights)layer.Adapter!;
        using var w = recording.Issued[1].detach().clone();
        using var x2 = x.detach().clone().requires_grad_(true);
        using (var y2 = nn.functional.linear(x2, w, layer.Bias!.detach())
            + nn.functional.linear(nn.functional.linear(x2, lora.A.Weight.detach()), lora.B.Weight.detach()) * 2.0)
        using (var loss2 = y2.square().sum())
            loss2.backward();
        var diff = (x.grad! - x2.grad!).abs().max().item<float>();
        Assert.True(diff <= 1e-5f * x2.grad!.abs().max().item<float>(), $"grad_x differs by {diff}");
    }

    [Fact]
    public void ThePlainPathKeepsTheDenseCopyWhichIsWhatTheProbeDetects()
    {
        // The control for the probe above: nn.functional.linear saves W for grad_x, and spoiling it makes backward fail.
        using var g = new Generator(5, CPU);
        using var w = randn([32, 64], generator: g);
        using var probe = w.alias();
        using var x = randn([3, 64], generator: g).requires_grad_(true);
        using var loss = nn.functional.linear(x, w).square().sum();
        using (no_grad()) probe.zero_();
        Assert.ThrowsAny<Exception>(() => loss.backward());
    }

    [Fact]
    public void ATrainedBiasGetsThePerFeatureSumOfTheOutputGradient()
    {
        // y = x Wᵀ + b, loss = Σ y·r: ∂loss/∂b[n] = Σ over rows of r[·, n], a vector of the output width (TorchSharp's
        // sum(0) with a plain 0 literal binds to sum(ScalarType) and reduced everything to one byte once).
        var rng = new Random(4);
        var codes = Enumerable.Range(0, 6 * 32).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
        using var weight = new Int8Weight(tensor(codes, [6, 32]), tensor(Enumerable.Range(0, 6).Select(i => 1f + i).ToArray()), ScalarType.Float32);
        using var x = randn(2, 3, 32);
        using var r = randn(2, 3, 6);
        using var bias = zeros(6).requires_grad_(true);
        using (enable_grad())
        using (var y = DequantizedLinear.apply(x, bias, weight))
        using (var loss = (y * r).sum())
            loss.backward();
        Assert.NotNull(bias.grad);
        Assert.Equal(new long[] { 6 }, bias.grad!.shape);
        using var expected = r.reshape(-1, 6).sum(0L);
        Assert.True(bias.grad.allclose(expected, rtol: 1e-6, atol: 1e-6), "the bias gradient is not the per-feature sum of the output gradient");
        DequantizedLinear.ReleaseHandedBack();
    }
}
