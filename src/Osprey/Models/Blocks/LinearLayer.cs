using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// y = x Wᵀ + b with Hugging Face parameter names. Unlike nn.Linear it allocates its weight uninitialised
/// on the target device and dtype: weights come from the checkpoint, so random init would only cost time
/// and a second copy in host memory. Code outside the model changes what the layer computes through two seams: an
/// <see cref="ILinearAdapter"/> (<see cref="Attach"/>) that wraps the base output and whose tensors are registered
/// beside the weight under its own names (a LoRA adapter's <c>lora_A.weight</c>, <c>lora_B.weight</c>,
/// <c>lora_magnitude_vector</c>, so adapter state-dict keys are the PEFT keys without <c>base_model.model.</c>), and an
/// <see cref="ILinearDelta"/> (<see cref="SetDelta"/>) added to the output, also where the output is a slice of a
/// stacked projection.
/// </summary>
internal sealed class LinearLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044 // TorchSharp registers fields by reflection; keep them plain fields.
    Parameter weight;
    Parameter? bias;
#pragma warning restore IDE0044
    ILinearAdapter? _adapter;
    ILinearDelta? _delta;
    ILinearBase? _base;
    Action? _baseChanged; // set by a FusedProjection whose buffer this layer views
    bool _deferred;       // the weight is a placeholder until UseBase or Materialize

    /// <summary>
    /// Creates an uninitialised [out, in] weight (and bias when asked). With <paramref name="deferred"/> the weight has
    /// its shape but no storage (<see cref="Placeholder"/>): the layer then gets a quantized base (<see cref="UseBase"/>)
    /// or its storage (<see cref="Materialize"/>) before weights load. (The meta device would say the same, but libtorch
    /// refuses set_ across devices, and modules here keep their Parameter objects.)
    /// </summary>
    public LinearLayer(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device, bool deferred = false) : base("Linear")
    {
        weight = new Parameter(deferred ? Placeholder(outFeatures, inFeatures, dtype, device) : empty(outFeatures, inFeatures, dtype: dtype, device: device), requires_grad: false);
        _deferred = deferred;
        if (hasBias) bias = new Parameter(empty(outFeatures, dtype: dtype, device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>
    /// Wraps existing tensors (typically row slices of one fused buffer, see <see cref="FusedProjection"/>)
    /// as this layer's parameters; they keep sharing storage with that buffer (<paramref name="deferred"/>: the buffer is a
    /// <see cref="Placeholder"/>, and <see cref="Materialize"/> gives this layer storage of its own).
    /// </summary>
    public LinearLayer(Tensor weightView, Tensor? biasView, bool deferred = false) : base("Linear")
    {
        _deferred = deferred;
        weight = new Parameter(weightView, requires_grad: false);
        if (biasView is not null) bias = new Parameter(biasView, requires_grad: false);
        RegisterComponents();
    }

    /// <summary>The [out, in] weight (a storage-free placeholder of that shape once <see cref="UseBase"/> has given a quantized base).</summary>
    public Parameter Weight => weight;

    /// <summary>The quantized base that replaces the dense weight, if any.</summary>
    public ILinearBase? Base => _base;

    /// <summary>Told when a base is set (the fused buffer this layer views can then free its rows).</summary>
    internal void OnBaseChanged(Action action) => _baseChanged = action;

    /// <summary>
    /// Replaces the dense weight by <paramref name="quantized"/>: forward dequantizes it at each call. The weight
    /// parameter keeps its shape (adapters and serving code read it) but becomes an expanded zero that holds no memory,
    /// so it cannot be written to or trained by mistake.
    /// </summary>
    public void UseBase(ILinearBase quantized)
    {
        if (_base is not null) throw new InvalidOperationException("this layer already has a quantized base");
        if (quantized.OutFeatures != weight.shape[0] || quantized.InFeatures != weight.shape[1])
            throw new ArgumentException($"a quantized base of [{quantized.OutFeatures}, {quantized.InFeatures}] does not fit the weight [{weight.shape[0]}, {weight.shape[1]}]");
        _base = quantized;
        using (no_grad())
        using (var placeholder = Placeholder(weight.shape[0], weight.shape[1], weight.dtype, weight.device))
            weight.set_(placeholder);
        _deferred = false;
        _baseChanged?.Invoke();
    }

    /// <summary>Gives a weight created deferred its own uninitialised storage (the layer stays dense); no-op otherwise.</summary>
    public void Materialize()
    {
        if (!_deferred) return;
        using var _ = no_grad();
        using var storage = empty(weight.shape[0], weight.shape[1], dtype: weight.dtype, device: weight.device);
        weight.set_(storage);
        _deferred = false;
    }

    /// <summary>An [rows, cols] zero that holds one element of memory (an expanded scalar): a weight's shape without its storage.</summary>
    internal static Tensor Placeholder(long rows, long cols, ScalarType dtype, Device device)
    {
        using var zero = zeros(1, 1, dtype: dtype, device: device);
        return zero.expand(rows, cols);
    }

    /// <summary>Turns the quantized base back into a dense weight in the weight's dtype (merging adapters needs one); no-op without a base.</summary>
    public void Densify()
    {
        if (_base is null) return;
        using (no_grad())
        using (var dense = _base.Dequantize())
        using (var typed = dense.to(weight.dtype, weight.device))
        using (var owned = typed.contiguous().clone()) // its own storage: the weight keeps it after this handle is gone
            weight.set_(owned);
        _base.Dispose();
        _base = null;
    }

    /// <summary>The dense weight: the weight itself, or a new dequantized copy of the base (dispose it).</summary>
    public Tensor DenseWeight() => _base is null ? weight.alias() : _base.Dequantize();

    /// <summary>The bias, if any.</summary>
    public Parameter? Bias => bias;

    /// <summary>The adapter wrapping this layer's output, if any.</summary>
    public ILinearAdapter? Adapter => _adapter;

    /// <summary>
    /// Puts <paramref name="adapter"/> on this layer and registers its modules and parameters under the names it gives.
    /// A layer holds one adapter, and none while it has an output delta: the two are alternatives.
    /// </summary>
    public void Attach(ILinearAdapter adapter)
    {
        if (_adapter is not null) throw new InvalidOperationException("this layer already has an adapter");
        if (_delta is not null) throw new InvalidOperationException("this layer has an output delta (serving adapters)");
        foreach (var (name, module) in adapter.Modules) register_module(name, module);
        foreach (var (name, parameter) in adapter.LayerParameters) register_parameter(name, parameter);
        _adapter = adapter;
    }

    /// <summary>The state-dict keys, relative to this layer, of the attached adapter's tensors (none without an adapter).</summary>
    public IEnumerable<string> AdapterKeys()
    {
        if (_adapter is null) yield break;
        foreach (var (name, module) in _adapter.Modules)
            foreach (var key in module.state_dict().Keys) yield return name + "." + key;
        foreach (var (name, _) in _adapter.LayerParameters) yield return name;
    }

    /// <summary>The delta added to this layer's output, if any.</summary>
    public ILinearDelta? Delta => _delta;

    /// <summary>Sets (or, with null, removes) the delta added to this layer's output.</summary>
    public void SetDelta(ILinearDelta? delta)
    {
        if (delta is not null && _adapter is not null) throw new InvalidOperationException("this layer has an adapter; an output delta is its alternative");
        _delta = delta;
    }

    /// <summary>True when this layer has a delta that adds anything in the next forward pass.</summary>
    public bool DeltaActive => _delta is { Active: true };

    /// <summary>Adds this layer's delta for input <paramref name="x"/> to <paramref name="y"/> in place (y may be a slice of a fused output).</summary>
    public void AddDelta(Tensor x, Tensor y)
    {
        if (_delta is { Active: true }) _delta.AddTo(x, y);
    }

    Tensor? _merged;

    /// <summary>
    /// Until called again with null, forward passes compute x <paramref name="merged"/>ᵀ + b (a copy of the weight with
    /// the adapter folded in, owned by the caller) and skip the adapter: two kernels fewer per call (rollouts).
    /// </summary>
    internal void UseMerged(Tensor? merged) => _merged = merged;

    /// <summary>Whether a merged copy replaces the weight (<see cref="UseMerged"/>).</summary>
    internal bool HasMerged => _merged is not null;

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        if (_merged is not null) return nn.functional.linear(x, _merged, bias);
        if (_base is not null) return QuantizedForward(x);
        var y = nn.functional.linear(x, weight, bias);
        if (_delta is { Active: true }) _delta.AddTo(x, y);
        return _adapter is null ? y : _adapter.Forward(x, y, weight, bias, training);
    }

    /// <summary>
    /// The base dequantized for this call only, in the compute dtype, as bitsandbytes' Linear4bit does (input cast to
    /// the compute dtype, output cast back). The dense copy is released as soon as the product exists: when autograd
    /// records the call it goes through <see cref="DequantizedLinear"/>, which dequantizes again in backward instead of
    /// keeping the weight. An adapter that reads the weight (DoRA) gets its own dequantized copy.
    /// </summary>
    Tensor QuantizedForward(Tensor x)
    {
        var quantized = _base!;
        var compute = quantized.ComputeDType;
        var xc = x.dtype == compute ? x : x.to_type(compute);
        var b = bias is null ? null : bias.dtype == compute ? bias : bias.to_type(compute);
        Tensor y;
        if (is_grad_enabled() && (xc.requires_grad || b is { requires_grad: true }))
            y = DequantizedLinear.apply(xc, b!, quantized);
        else if (quantized.TryFusedLinear(xc) is { } fused)
        {
            y = fused;
            if (b is not null) y.add_(b);
        }
        else
            using (var w = quantized.Dequantize()) y = nn.functional.linear(xc, w, b);
        if (y.dtype != x.dtype) y = y.to_type(x.dtype);
        if (_delta is { Active: true }) _delta.AddTo(x, y);
        if (_adapter is null) return y;
        if (!_adapter.ReadsWeight) return _adapter.Forward(x, y, weight, bias, training);
        using var dense = quantized.Dequantize();
        return _adapter.Forward(x, y, dense, bias, training);
    }
}
