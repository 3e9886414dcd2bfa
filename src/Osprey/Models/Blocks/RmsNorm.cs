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
        using var scope = NewDisposeScope();
        var dtype = x.dtype;
        var h = x.to_type(ScalarType.Float32);
        var normed = h * (h.square().mean([-1L], keepdim: true) + _eps).rsqrt();
        var result = _offset
            ? (normed * (weight.to_type(ScalarType.Float32) + 1.0)).to_type(dtype)
            : weight * normed.to_type(dtype);
        return result.MoveToOuterDisposeScope();
    }
}
