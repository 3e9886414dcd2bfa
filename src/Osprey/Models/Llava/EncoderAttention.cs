using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>CLIP/SigLIP self-attention: separate q/k/v projections with bias, full bidirectional softmax(q kᵀ/√d) v
/// over one image's positions, then out_proj. The projections are <see cref="LinearLayer"/>s, so LoRA can adapt them
/// (--freeze_vit false, or --target_modules naming them).</summary>
internal sealed class EncoderAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    LinearLayer q_proj, k_proj, v_proj, out_proj;
#pragma warning restore IDE0044
    readonly int _heads, _headDim;

    public EncoderAttention(EncoderSpec s, ScalarType dtype, Device device) : base("EncoderAttention")
    {
        _heads = s.Heads;
        _headDim = s.HeadDim;
        q_proj = new LinearLayer(s.Hidden, s.Hidden, true, dtype, device);
        k_proj = new LinearLayer(s.Hidden, s.Hidden, true, dtype, device);
        v_proj = new LinearLayer(s.Hidden, s.Hidden, true, dtype, device);
        out_proj = new LinearLayer(s.Hidden, s.Hidden, true, dtype, device);
        RegisterComponents();
    }

    /// <summary>x [N, L, E] → [N, L, E].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], l = x.shape[1];
        Tensor Heads(LinearLayer p) => p.forward(x).view(n, l, _heads, _headDim).transpose(1, 2);
        var o = nn.functional.scaled_dot_product_attention(Heads(q_proj), Heads(k_proj), Heads(v_proj)); // scale 1/√d
        return out_proj.forward(o.transpose(1, 2).reshape(n, l, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}
