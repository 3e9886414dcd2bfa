using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// y = x Wᵀ + b with Hugging Face parameter names. Unlike nn.Linear it allocates its weight uninitialised
/// on the target device and dtype: weights come from the checkpoint, so random init would only cost time
/// and a second copy in host memory.
/// </summary>
internal sealed class LinearLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044 // TorchSharp registers fields by reflection; keep them plain fields.
    Parameter weight;
    Parameter? bias;
#pragma warning restore IDE0044

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

    /// <inheritdoc />
    public override Tensor forward(Tensor x) => nn.functional.linear(x, weight, bias);
}
