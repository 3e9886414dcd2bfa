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

    /// <summary>Creates the layer's uninitialised modules (<paramref name="deferProjections"/>: projection weights without storage, see <see cref="LinearLayer"/>).</summary>
    public DecoderLayer(DecoderSpec spec, ScalarType dtype, Device device, bool deferProjections = false) : base("DecoderLayer")
    {
        self_attn = new Attention(spec, dtype, device, deferProjections);
        mlp = new Mlp(spec, dtype, device, deferProjections);
        input_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        post_attention_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        if (spec.SandwichNorms)
        {
            pre_feedforward_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
            post_feedforward_layernorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        }
        RegisterComponents();
    }

    /// <summary>
    /// Under tensor parallelism: sums a row-parallel output (o_proj's, down_proj's partial products) over the ranks, in
    /// place, before anything reads it; null on one device.
    /// </summary>
    internal Action<Tensor>? AllReduce { get; set; }

    internal Attention SelfAttention => self_attn;
    internal Mlp Feedforward => mlp;
    internal RmsNorm InputNorm => input_layernorm;
    internal RmsNorm PostAttentionNorm => post_attention_layernorm;
    internal bool HasSandwichNorms => pre_feedforward_layernorm is not null;
    internal (RmsNorm? Pre, RmsNorm? Post) FeedforwardNorms => (pre_feedforward_layernorm, post_feedforward_layernorm);

    /// <summary>h [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor h, Tensor cos, Tensor sin, AttentionMask mask, KvCache? cache, int layer)
    {
        // Temporaries are disposed as soon as they are used, to keep peak memory to what one op needs.
        var tokens = h.shape[1];
        ForwardTrace.Start(tokens);
        Tensor a;
        using (var x = input_layernorm.forward(h))
        {
            ForwardTrace.Mark(tokens, "norm (input)");
            a = self_attn.Forward(x, cos, sin, mask, cache, layer);
            AllReduce?.Invoke(a);
        }
        ForwardTrace.Mark(tokens, "attention (all)");
        Tensor mid, x2;
        using (a)
        {
            if (pre_feedforward_layernorm is null)
            {
                // The residual add and the norm after it: one fused kernel on CUDA at inference.
                (x2, mid) = post_attention_layernorm.ForwardWithResidual(h, a);
            }
            else
            {
                using (var normed = post_attention_layernorm.forward(a)) mid = h + normed;
                x2 = pre_feedforward_layernorm.forward(mid);
            }
        }
        using (mid)
        {
            ForwardTrace.Mark(tokens, "residual add + norm (post-attn)");
            using var x = x2;
            using var m = mlp.forward(x);
            AllReduce?.Invoke(m);
            ForwardTrace.Mark(tokens, "mlp");
            if (post_feedforward_layernorm is null) return mid + m;
            using var post = post_feedforward_layernorm.forward(m);
            return mid + post;
        }
    }
}
