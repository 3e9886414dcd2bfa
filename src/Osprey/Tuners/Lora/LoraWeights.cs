using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// The trainable part of one LoRA layer: A [r, in], B [out, r] and, for DoRA, the magnitude [out], in the model's dtype.
/// y = base(x) + s · B A dropout(x); DoRA (Liu et al. 2024, as PEFT computes it):
/// y = base(x) + (m / ‖W + s·BA‖ − 1) · W·dropout(x) + (m / ‖W + s·BA‖) · s · B A dropout(x), the norm taken per
/// output row and not differentiated. It plugs into a <see cref="LinearLayer"/> as its <see cref="ILinearAdapter"/>.
/// </summary>
internal sealed class LoraWeights : ILinearAdapter
{
    /// <summary>
    /// Puts a LoRA adapter of <paramref name="settings"/> on <paramref name="layer"/>: A [r, in] and B [out, r] in the
    /// weight's dtype (a trainer keeps float32 masters in its optimizer), A drawn like PEFT's default (Kaiming-uniform,
    /// a = √5) and B zero so the layer starts unchanged; for DoRA the magnitude starts as the row norms of the weight.
    /// The layer registers them as <c>lora_A</c>, <c>lora_B</c> and <c>lora_magnitude_vector</c>.
    /// </summary>
    public static LoraWeights AttachTo(LinearLayer layer, LoraLayerSettings settings, Generator init, Func<Generator?> dropout)
    {
        var weight = layer.Weight;
        var lora = new LoraWeights(weight.shape[1], weight.shape[0], settings, weight.device, weight.dtype, init, dropout);
        if (settings.UseDora)
        {
            using var _ = no_grad();
            using var dense = layer.DenseWeight(); // a quantized base's dequantized weight, as PEFT's DoRA on bitsandbytes uses
            using var norms = dense.to_type(ScalarType.Float32).norm(1, false, 2);
            lora.Magnitude!.copy_(norms);
        }
        layer.Attach(lora);
        return lora;
    }

    /// <summary>
    /// Creates A (Kaiming-uniform like PEFT's default init: U(±1/√in)), B = 0 and, for DoRA, a magnitude to be filled,
    /// in <paramref name="dtype"/> (the model's: the trainer keeps float32 masters of them in its optimizer).
    /// </summary>
    public LoraWeights(long inFeatures, long outFeatures, LoraLayerSettings settings, Device device, ScalarType dtype, Generator init, Func<Generator?> dropout)
    {
        Settings = settings;
        _dropout = dropout;
        var bound = 1.0 / Math.Sqrt(inFeatures);
        // Drawn on the CPU from the seeded CPU generator, then moved: the same initial adapter on every device.
        using var a = empty(settings.Rank, inFeatures, dtype: ScalarType.Float32).uniform_(-bound, bound, init);
        A = new LoraMatrix(a.to(dtype, device));
        B = new LoraMatrix(zeros(outFeatures, settings.Rank, dtype: dtype, device: device));
        if (settings.UseDora) Magnitude = new Parameter(ones(outFeatures, dtype: dtype, device: device), requires_grad: true);
    }

    readonly Func<Generator?> _dropout; // null: the device's default generator (CUDA), seeded by the trainer

    /// <summary>Rank, scaling, dropout, DoRA.</summary>
    public LoraLayerSettings Settings { get; }

    /// <summary>The down projection (state-dict name lora_A).</summary>
    public LoraMatrix A { get; }

    /// <summary>The up projection (lora_B).</summary>
    public LoraMatrix B { get; }

    /// <summary>DoRA's per-row magnitude (lora_magnitude_vector), or null.</summary>
    public Parameter? Magnitude { get; }

    LoraSharedInput? _group; // the adapters of projections reading the same input, sharing one A-product
    int _groupIndex;

    /// <summary>The group this adapter's down-projection is computed with, if any.</summary>
    public LoraSharedInput? Group => _group;

    /// <summary>Called by <paramref name="group"/>: this adapter is its member <paramref name="index"/>.</summary>
    internal void JoinGroup(LoraSharedInput group, int index)
    {
        if (_group is not null) throw new InvalidOperationException("this adapter already shares its input with a group");
        (_group, _groupIndex) = (group, index);
    }

    /// <summary>True while the adapter is switched off (the layer is then its base weight alone).</summary>
    public bool Disabled { get; set; }

    /// <inheritdoc />
    public IEnumerable<(string Name, nn.Module Module)> Modules => [("lora_A", A), ("lora_B", B)];

    /// <inheritdoc />
    public bool ReadsWeight => Magnitude is not null; // DoRA's norm needs W; LoRA only adds to the base output

    /// <inheritdoc />
    public IEnumerable<(string Name, Parameter Parameter)> LayerParameters => Magnitude is null ? [] : [("lora_magnitude_vector", Magnitude)];

    /// <summary>The trainable tensors with their names relative to the layer.</summary>
    public IEnumerable<(string Name, Parameter Tensor)> Parameters()
    {
        yield return ("lora_A.weight", A.Weight);
        yield return ("lora_B.weight", B.Weight);
        if (Magnitude is not null) yield return ("lora_magnitude_vector", Magnitude);
    }

    /// <summary>The adapted output given the input and the base layer's output (the base output itself while <see cref="Disabled"/>).</summary>
    public Tensor Forward(Tensor x, Tensor baseOut, Tensor weight, Tensor? bias, bool training)
    {
        if (Disabled) return baseOut;
        var dt = x.dtype;
        var s = Settings.Scaling;
        var dropped = Settings.Dropout > 0 && training;
        var xd = dropped ? DropInput(x) : x;
        var a = Cast(A.Weight, dt);
        var b = Cast(B.Weight, dt);
        // x Aᵀ from the group's one product over the stacked A's, [rows, r]; null where it would not be exact (dropout).
        var down = _group?.Down(_groupIndex, x, training);
        if (Magnitude is null)
        {
            // base + s · (x Aᵀ) Bᵀ with the up-projection, scale and sum in one addmm kernel.
            var t = down ?? nn.functional.linear(xd, a);
            var outFeatures = baseOut.shape[^1];
            var sum = addmm(baseOut.reshape(-1, outFeatures), t.reshape(-1, t.shape[^1]), b.t(), 1f, (float)s);
            return sum.view(baseOut.shape);
        }
        var delta = down is null ? nn.functional.linear(nn.functional.linear(xd, a), b) : nn.functional.linear(down, b).view(baseOut.shape);
        Tensor norm;
        using (no_grad())
        {
            using var w = Cast(weight, dt).detach();
            using var ba = b.detach().matmul(a.detach());
            using var adapted = w + ba * s;
            norm = adapted.norm(1, false, 2);
        }
        var scale = Cast(Magnitude, dt) / norm;
        var plain = dropped ? nn.functional.linear(xd, weight) : bias is null ? baseOut : baseOut - bias;
        return baseOut + (scale - 1) * plain + scale * delta * s;
    }

    /// <summary>The weight with this adapter merged in, in float32: W + s·BA, or for DoRA m/‖W + s·BA‖ · (W + s·BA).</summary>
    public static Tensor Merged(Tensor weight, Tensor a, Tensor b, Tensor? magnitude, double scaling)
    {
        using var w = weight.to_type(ScalarType.Float32);
        using var ba = b.to_type(ScalarType.Float32).matmul(a.to_type(ScalarType.Float32));
        var adapted = w + ba * scaling;
        if (magnitude is null) return adapted;
        using (adapted)
        {
            using var norm = adapted.norm(1, true, 2);
            using var m = magnitude.to_type(ScalarType.Float32).reshape(-1, 1);
            return adapted * (m / norm);
        }
    }

    /// <summary>
    /// Inverted dropout drawn from the model's own generator (not the process-wide one), so the masks depend only on
    /// the seed the trainer sets per layer: recomputation under gradient checkpointing and resumed runs see the same.
    /// </summary>
    /// <remarks>A stacked projection (<see cref="LoraStackedProjection"/>) draws each adapter's mask through it too.</remarks>
    internal Tensor DropInput(Tensor x)
    {
        var p = Settings.Dropout;
        var generator = _dropout();
        if (generator is null) return nn.functional.dropout(x, p, true); // CUDA: one fused kernel, default generator
        using var u = rand(x.shape, dtype: x.dtype, device: x.device, generator: generator);
        using var keep = u.ge(p);
        return x * keep * (1.0 / (1.0 - p));
    }

    static Tensor Cast(Tensor t, ScalarType dt) => t.dtype == dt ? t.alias() : t.to_type(dt);
}
