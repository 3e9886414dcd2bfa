using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>Gated MLP: down(act(gate(x)) * up(x)), with separate or fused (gate_up_proj) projections.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    LinearLayer? gate_proj, up_proj, gate_up_proj;
    LinearLayer down_proj;
#pragma warning restore IDE0044
    readonly string _act;
    readonly FusedProjection? _fused; // gate/up stacked; not a registered component (its parts are)

    /// <summary>Creates uninitialised projections as <paramref name="spec"/> says.</summary>
    public Mlp(DecoderSpec spec, ScalarType dtype, Device device) : base("MLP")
    {
        long h = spec.HiddenSize, i = spec.IntermediateSize;
        if (spec.FusedGateUp)
        {
            gate_up_proj = new LinearLayer(h, 2 * i, spec.MlpBias, dtype, device);
        }
        else
        {
            _fused = new FusedProjection(h, [i, i], spec.MlpBias, dtype, device);
            (gate_proj, up_proj) = (_fused.Parts[0], _fused.Parts[1]);
        }
        down_proj = new LinearLayer(i, h, spec.MlpBias, dtype, device);
        _act = spec.Activation;
        if (_act is not ("silu" or "swish" or "gelu" or "gelu_pytorch_tanh" or "gelu_new" or "relu"))
            throw new OspreyException($"activation '{_act}' in config.json is not supported; supported: silu, gelu, gelu_pytorch_tanh, gelu_new, relu.");
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        Tensor gate, up;
        var fusedOut = gate_up_proj?.forward(x) ?? (_fused is { Usable: true } ? _fused.Forward(x) : null);
        if (fusedOut is not null)
        {
            var both = fusedOut;
            var half = both.shape[^1] / 2;
            gate = both.narrow(-1, 0, half);
            up = both.narrow(-1, half, half);
        }
        else
        {
            gate = gate_proj!.forward(x);
            up = up_proj!.forward(x);
        }
        return down_proj.forward(Activate(gate) * up);
    }

    Tensor Activate(Tensor x) => _act switch
    {
        "silu" or "swish" => nn.functional.silu(x),
        "gelu" => nn.functional.gelu(x),
        "relu" => nn.functional.relu(x),
        _ => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
    };
}
