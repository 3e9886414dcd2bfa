using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Root-mean-square norm, computed in float32. Llama style returns weight * norm(x).to(dtype); Gemma
/// style (offset) returns (norm(x) * (1 + weight)).to(dtype) — the two round differently in half types,
/// so each follows its reference exactly.
/// </summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    Parameter weight;
#pragma warning restore IDE0044
    readonly double _eps;
    readonly Scalar _epsScalar; // held by the module: a temporary Scalar may be finalized while libtorch still reads it
    readonly bool _offset;

    /// <summary>Creates an uninitialised norm over the last dimension of width <paramref name="dim"/>.</summary>
    public RmsNorm(long dim, double eps, bool offset, ScalarType dtype, Device device) : base("RMSNorm")
    {
        weight = new Parameter(empty(dim, dtype: dtype, device: device), requires_grad: false);
        _eps = eps;
        _epsScalar = eps.ToScalar();
        _offset = offset;
        RegisterComponents();
    }

    /// <summary>The weight, epsilon and whether the weight is an offset from 1 (Gemma), for the managed CPU decoder.</summary>
    internal (Tensor Weight, double Eps, bool Offset) Parts => (weight, _eps, _offset);

    /// <summary>True when the fused CUDA kernels take <paramref name="x"/> (<see cref="FusedKernels"/>).</summary>

    bool Fused(Tensor x) => x.dtype == weight.dtype && FusedKernels.Usable(x) && x.is_contiguous();

    bool NeedsGrad(Tensor x) => is_grad_enabled() && (x.requires_grad || weight.requires_grad);

    /// <summary>
    /// norm(h + a) and the sum h + a itself (the residual stream), in one fused kernel when nothing needs gradients.
    /// </summary>
    public (Tensor Normed, Tensor Sum) ForwardWithResidual(Tensor h, Tensor a)
    {
        if (Fused(h) && a.dtype == h.dtype && a.is_contiguous() && !NeedsGrad(h) && !NeedsGrad(a))
        {
            var (y, sum, _) = FusedKernels.RmsNorm(h, a, weight, _eps, _offset, keepInv: false);
            return (y, sum!);
        }
        var s = h + a;
        return (forward(s), s);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        if (Fused(x))
        {
            if (!NeedsGrad(x)) return FusedKernels.RmsNorm(x, null, weight, _eps, _offset, keepInv: false).Y;
            if (FusedKernels.Autograd) return FusedRmsNormFunction.apply(x, weight, _eps, _offset, weight.requires_grad);
        }
        // Each temporary is disposed as soon as it is used, so peak memory is about two float32 copies of x
        // rather than every intermediate at once (disposing a handle never disturbs autograd).
        var dtype = x.dtype;
        using var h = x.to_type(ScalarType.Float32);
        Tensor inv;
        using (var sq = h.square())
        using (var ms = sq.mean([-1L], keepdim: true))
        using (var shifted = ms + _epsScalar)
            inv = shifted.rsqrt();
        using var normed = h * inv;
        inv.Dispose();
        if (_offset)
        {
            using var w = weight.to_type(ScalarType.Float32);
            using var scale = w + Scalars.One;
            using var y = normed * scale;
            return y.to_type(dtype);
        }
        using var cast = normed.to_type(dtype);
        return weight * cast;
    }
}
