using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// One pre-norm decoder layer. With <see cref="DecoderSpec.SandwichNorms"/> (Gemma 2/3) the attention and
/// MLP outputs are normed again before the residual add, and the MLP input uses pre_feedforward_layernorm.
/// </summary>
internal sealed class DecoderLayer : nn.Module
{
#pragma warning disable IDE0044
    Attention self_attn;
    Mlp mlp;
    RmsNorm input_layernorm, post_attention_layernorm;
    RmsNorm? pre_feedforward_layernorm, post_feedforward_layernorm;
#pragma warning restore IDE0044

    /// <summary>Creates the layer's uninitialised modules.</summary>
    public DecoderLayer(DecoderSpec spec, ScalarType dtype, Device device) : base("DecoderLayer")
    {
        self_attn = new Attention(spec, dtype, device);
        mlp = new Mlp(spec, dtype, device);
        input_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        post_attention_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        if (spec.SandwichNorms)
        {
            pre_feedforward_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
            post_feedforward_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        }
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor h, Tensor cos, Tensor sin, AttentionMask mask, KvCache? cache, int layer)
    {
        var a = self_attn.Forward(input_layernorm.forward(h), cos, sin, mask, cache, layer);
        if (pre_feedforward_layernorm is null)
        {
            h = h + a;
            return h + mlp.forward(post_attention_layernorm.forward(h));
        }
        h = h + post_attention_layernorm.forward(a);
        return h + post_feedforward_layernorm!.forward(mlp.forward(pre_feedforward_layernorm.forward(h)));
    }
}
