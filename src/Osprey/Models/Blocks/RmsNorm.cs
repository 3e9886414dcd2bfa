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
    readonly bool _offset;

    /// <summary>Creates an uninitialised norm over the last dimension of width <paramref name="dim"/>.</summary>
    public RmsNorm(long dim, double eps, bool offset, ScalarType dtype, Device device) : base("RMSNorm")
    {
        weight = new Parameter(empty(dim, dtype: dtype, device: device), requires_grad: false);
        _eps = eps;
        _offset = offset;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        // Each temporary is disposed as soon as it is used, so peak memory is about two float32 copies of x
        // rather than every intermediate at once (disposing a handle never disturbs autograd).
        var dtype = x.dtype;
        using var h = x.to_type(ScalarType.Float32);
        Tensor inv;
        using (var sq = h.square())
        using (var ms = sq.mean([-1L], keepdim: true))
        using (var shifted = ms + _eps)
            inv = shifted.rsqrt();
        using var normed = h * inv;
        inv.Dispose();
        if (_offset)
        {
            using var w = weight.to_type(ScalarType.Float32);
            using var scale = w + 1.0;
            using var y = normed * scale;
            return y.to_type(dtype);
        }
        using var cast = normed.to_type(dtype);
        return weight * cast;
    }
}
