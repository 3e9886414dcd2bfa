using Osprey.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// y = x Wᵀ + b with Hugging Face parameter names. Unlike nn.Linear it allocates its weight uninitialised
/// on the target device and dtype: weights come from the checkpoint, so random init would only cost time
/// and a second copy in host memory. A LoRA adapter (<see cref="AttachLora"/>) adds
/// <c>lora_A.weight</c>, <c>lora_B.weight</c> and, for DoRA, <c>lora_magnitude_vector</c> beside the weight,
/// so adapter state-dict keys are the PEFT keys without the <c>base_model.model.</c> prefix.
/// </summary>
internal sealed class LinearLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044 // TorchSharp registers fields by reflection; keep them plain fields.
    Parameter weight;
    Parameter? bias;
#pragma warning restore IDE0044
    LoraWeights? _lora;
    List<ServingLora>? _serving;
    ServingRows? _rows;

    /// <summary>Creates an uninitialised [out, in] weight (and bias when asked).</summary>
    public LinearLayer(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device) : base("Linear")
    {
        weight = new Parameter(empty(outFeatures, inFeatures, dtype: dtype, device: device), requires_grad: false);
        if (hasBias) bias = new Parameter(empty(outFeatures, dtype: dtype, device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>
    /// Wraps existing tensors (typically row slices of one fused buffer, see <see cref="FusedProjection"/>)
    /// as this layer's parameters; they keep sharing storage with that buffer.
    /// </summary>
    public LinearLayer(Tensor weightView, Tensor? biasView) : base("Linear")
    {
        weight = new Parameter(weightView, requires_grad: false);
        if (biasView is not null) bias = new Parameter(biasView, requires_grad: false);
        RegisterComponents();
    }

    /// <summary>The [out, in] weight.</summary>
    public Parameter Weight => weight;

    /// <summary>The bias, if any.</summary>
    public Parameter? Bias => bias;

    /// <summary>The attached LoRA adapter, if any.</summary>
    public LoraWeights? Lora => _lora;

    /// <summary>
    /// Puts a LoRA adapter of <paramref name="settings"/> on this layer: A [r, in] and B [out, r] in the
    /// weight's dtype (a trainer keeps float32 masters in its optimizer), A drawn
    /// like PEFT's default (Kaiming-uniform, a = √5) and B zero so the layer starts unchanged; for DoRA the
    /// magnitude starts as the row norms of the weight.
    /// </summary>
    public LoraWeights AttachLora(LoraLayerSettings settings, Generator init, Func<Generator?> dropout)
    {
        if (_lora is not null) throw new InvalidOperationException("this layer already has a LoRA adapter");
        var lora = new LoraWeights(weight.shape[1], weight.shape[0], settings, weight.device, weight.dtype, init, dropout);
        if (settings.UseDora)
        {
            using var _ = no_grad();
            using var norms = weight.to_type(ScalarType.Float32).norm(1, false, 2);
            lora.Magnitude!.copy_(norms);
        }
        register_module("lora_A", lora.A);
        register_module("lora_B", lora.B);
        if (lora.Magnitude is not null) register_parameter("lora_magnitude_vector", lora.Magnitude);
        _lora = lora;
        return lora;
    }

    /// <summary>
    /// Adds serving adapter <paramref name="lora"/> (unmerged, not a registered parameter) whose rows
    /// <paramref name="rows"/> selects per forward pass.
    /// </summary>
    public void AddServing(ServingLora lora, ServingRows rows)
    {
        if (_lora is not null) throw new InvalidOperationException("this layer has a training LoRA adapter");
        (_serving ??= []).Add(lora);
        _rows = rows;
    }

    /// <summary>Removes every serving adapter.</summary>
    public void ClearServing()
    {
        _serving = null;
        _rows = null;
    }

    /// <summary>True when this layer has a serving adapter and some row of the current batch uses an adapter.</summary>
    public bool ServingActive => _serving is not null && _rows is { Any: true };

    /// <summary>Adds this layer's serving-adapter deltas for input <paramref name="x"/> to <paramref name="y"/> in place (y may be a slice of a fused output).</summary>
    public void AddServingDeltas(Tensor x, Tensor y)
    {
        if (_serving is not null && _rows is { Any: true }) ServingLora.AddDeltas(_serving, _rows, x, y);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        var y = nn.functional.linear(x, weight, bias);
        if (_serving is not null && _rows is { Any: true }) ServingLora.AddDeltas(_serving, _rows, x, y);
        if (_lora is null || _lora.Disabled) return y;
        return _lora.Apply(x, y, weight, bias, training);
    }
}
