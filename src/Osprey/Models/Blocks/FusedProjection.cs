using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// One buffer holding several projections that read the same input (q/k/v, gate/up) stacked by rows. The
/// Hugging Face-named <see cref="LinearLayer"/>s are row views of it, so checkpoints load into them as
/// usual, while inference runs one matrix multiply instead of two or three — batch-1 decode is bound by
/// the number of kernel launches, not by arithmetic. Training the weights themselves (they require grad) uses the
/// separate layers, so gradients land on the named parameters; training adapters on frozen parts keeps the one product
/// when the adapters can be applied to it at once (<see cref="Stacked"/>).
/// </summary>
internal sealed class FusedProjection
{
    /// <summary>The stacked [sum(out), in] weight.</summary>
    public Tensor Weight { get; }

    /// <summary>The stacked bias, if the projections have one.</summary>
    public Tensor? Bias { get; }

    /// <summary>One layer per projection, in stacking order.</summary>
    public IReadOnlyList<LinearLayer> Parts { get; }

    /// <summary>
    /// Allocates the buffer for projections of widths <paramref name="outs"/> from <paramref name="inFeatures"/>. With
    /// <paramref name="deferred"/> the stacked weight is never allocated (the parts are about to get quantized bases, see
    /// <see cref="LinearLayer.Materialize"/>); the bias always is.
    /// </summary>
    public FusedProjection(long inFeatures, long[] outs, bool hasBias, ScalarType dtype, Device device, bool deferred = false)
    {
        var total = outs.Sum();
        Weight = deferred ? LinearLayer.Placeholder(total, inFeatures, dtype, device) : empty(total, inFeatures, dtype: dtype, device: device);
        _released = deferred; // never allocated: the parts own (or quantize) their weights
        Bias = hasBias ? empty(total, dtype: dtype, device: device) : null;
        var parts = new List<LinearLayer>();
        long start = 0;
        foreach (var o in outs)
        {
            parts.Add(new LinearLayer(Weight.narrow(0, start, o), Bias?.narrow(0, start, o), deferred));
            start += o;
        }
        Parts = parts;
        foreach (var part in parts) part.OnBaseChanged(ReleaseWhenQuantized);
    }

    bool _released; // the stacked buffer was given back; parts dequantized later own their own weights

    /// <summary>Once every part has a quantized base the stacked buffer is never read again: give its memory back.</summary>
    void ReleaseWhenQuantized()
    {
        if (_released || !Parts.All(p => p.Base is not null)) return;
        _released = true;
        using var _ = no_grad();
        using var placeholder = LinearLayer.Placeholder(Weight.shape[0], Weight.shape[1], Weight.dtype, Weight.device);
        Weight.set_(placeholder);
    }

    /// <summary>
    /// True when the fused buffer may be used: a merged copy is in use (<see cref="UseMerged"/>), or no part is being
    /// trained or has a quantized base, and no part carries an adapter that wraps its output unless the
    /// <see cref="Stacked"/> adapter applies now.
    /// </summary>
    public bool Usable => _merged is not null
        || (!_released && Parts.All(p => !p.Weight.requires_grad && p.Base is null) && (!Adapted || Stacked?.Applies(Parts[0].training) == true));

    /// <summary>True when some part carries an adapter that wraps its output.</summary>
    public bool Adapted => Parts.Any(p => p.Adapter is not null);

    /// <summary>
    /// The parts' adapters applied to the stacked output at once (<see cref="IStackedAdapter"/>), or null: then a part with
    /// an adapter makes the projection unusable and the parts run one by one.
    /// </summary>
    internal IStackedAdapter? Stacked { get; set; }

    Tensor? _merged;

    /// <summary>
    /// The stacked weight inference multiplies by: the merged copy while one is in use, else <see cref="Weight"/>.
    /// </summary>
    public Tensor Current => _merged ?? Weight;

    /// <summary>
    /// Until called again with null, forward passes multiply by <paramref name="merged"/> (a [sum(out), in] copy of the
    /// stacked weight with the parts' adapters folded in, owned by the caller) instead of the parts and their adapters:
    /// one matrix multiply again for a model whose projections carry LoRA adapters (rollouts read the live policy so).
    /// </summary>
    internal void UseMerged(Tensor? merged) => _merged = merged;

    /// <summary>
    /// All projections of x at once: [..., sum(out)]. The parts' adapters go through <see cref="Stacked"/>; output deltas of
    /// the parts (serving adapters, inference only) are added in place to the parts' slices of the one fused output, so
    /// the base stays one matrix multiply.
    /// </summary>
    public Tensor Forward(Tensor x)
    {
        var y = TorchSharp.torch.nn.functional.linear(x, Current, Bias);
        if (_merged is null && Stacked is not null && Adapted) return Stacked.Forward(x, y, Parts[0].training);
        long start = 0;
        foreach (var part in Parts)
        {
            var width = part.Weight.shape[0];
            if (part.DeltaActive)
            {
                using var slice = y.narrow(-1, start, width);
                part.AddDelta(x, slice);
            }
            start += width;
        }
        return y;
    }
}
