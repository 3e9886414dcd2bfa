using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Multi-head attention with grouped KV heads, RoPE, optional q/k norms, fused or separate q/k/v
/// projections, soft-capping and a KV cache. Grouped heads are handled without copying K/V: the queries
/// of the heads that share a KV head are stacked along the query axis ("folded") and attend to that one
/// KV head, which is exact and keeps decode from re-materialising the cache every step.
/// </summary>
internal sealed class Attention : nn.Module
{
#pragma warning disable IDE0044
    LinearLayer? q_proj, k_proj, v_proj, qkv_proj;
    LinearLayer o_proj;
    RmsNorm? q_norm, k_norm;
#pragma warning restore IDE0044
    readonly int _heads, _kvHeads, _headDim;
    readonly double _scale;
    readonly double? _softcap;
    readonly FusedProjection? _fused; // q/k/v stacked; not a registered component (its parts are)

    /// <summary>The stacked q/k/v projection, where this block has one.</summary>
    internal FusedProjection? Fused => _fused;

    /// <summary>The projections (q/k/v separate, or the stacked qkv_proj) and norms, for the managed CPU decoder.</summary>
    internal (LinearLayer? Q, LinearLayer? K, LinearLayer? V, LinearLayer? Qkv, LinearLayer O, RmsNorm? QNorm, RmsNorm? KNorm) Parts =>
        (q_proj, k_proj, v_proj, qkv_proj, o_proj, q_norm, k_norm);

    /// <summary>The score scale and soft cap.</summary>
    internal (double Scale, double? Softcap) Scoring => (_scale, _softcap);

    /// <summary>Creates uninitialised projections as <paramref name="spec"/> says.</summary>
    public Attention(DecoderSpec spec, ScalarType dtype, Device device, bool deferProjections = false) : base("Attention")
    {
        _heads = spec.NumHeads;
        _kvHeads = spec.NumKvHeads;
        _headDim = spec.HeadDim;
        _scale = spec.AttentionScale ?? 1.0 / Math.Sqrt(spec.HeadDim);
        _softcap = spec.AttentionSoftcap;
        long h = spec.HiddenSize, qOut = (long)_heads * _headDim, kvOut = (long)_kvHeads * _headDim;
        if (spec.FusedQkv)
        {
            qkv_proj = new LinearLayer(h, qOut + 2 * kvOut, spec.QkvBias, dtype, device, deferProjections);
        }
        else
        {
            _fused = new FusedProjection(h, [qOut, kvOut, kvOut], spec.QkvBias, dtype, device, deferProjections);
            (q_proj, k_proj, v_proj) = (_fused.Parts[0], _fused.Parts[1], _fused.Parts[2]);
        }
        o_proj = new LinearLayer(qOut, h, spec.OutputBias, dtype, device, deferProjections);
        if (spec.QkNorm)
        {
            q_norm = new RmsNorm(_headDim, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
            k_norm = new RmsNorm(_headDim, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        }
        RegisterComponents();
    }

    /// <summary>
    /// x [B, T, hidden] → [B, T, hidden]. <paramref name="cache"/> (with <paramref name="layer"/>) holds
    /// earlier keys/values; <paramref name="mask"/> says who attends to whom.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, AttentionMask mask, KvCache? cache, int layer)
    {
        long b = x.shape[0], t = x.shape[1];
        Tensor q, k, v;
        var fusedOut = qkv_proj?.forward(x) ?? (_fused is { Usable: true } ? _fused.Forward(x) : null);
        if (fusedOut is not null && q_norm is null)
        {
            // One RoPE pass over the query and key heads together, straight from the fused projection.
            ForwardTrace.Mark(t, "attn: qkv proj");
            // On CUDA at inference the fused kernel rotates the query and key heads in place in the projection's output;
            // in a serving slot step it also writes the keys and values into the cache in the same kernel.
            var heads = fusedOut.view(b, t, _heads + 2 * _kvHeads, _headDim);
            if (cache?.TryAppendRotated(layer, heads, _heads, cos, sin) is { } written)
            {
                q = heads.narrow(2, 0, _heads).transpose(1, 2);
                (k, v) = written;
            }
            else
            {
                var qk = RotaryEmbedding.ApplyHeadsLast(heads.narrow(2, 0, _heads + _kvHeads), cos, sin, mayOverwrite: true);
                ForwardTrace.Mark(t, "attn: rope");
                q = qk.narrow(1, 0, _heads);
                k = qk.narrow(1, _heads, _kvHeads);
                v = heads.narrow(2, _heads + _kvHeads, _kvHeads).transpose(1, 2);
                if (cache is not null) (k, v) = cache.Append(layer, k, v);
            }
            ForwardTrace.Mark(t, "attn: cache write");
            var fo = _softcap is null ? Sdpa(q, k, v, mask, b, t) : Eager(q, k, v, mask, b, t);
            ForwardTrace.Mark(t, "attn: sdpa");
            return o_proj.forward(fo);
        }
        if (fusedOut is not null)
        {
            var qkv = fusedOut;
            long qn = (long)_heads * _headDim, kn = (long)_kvHeads * _headDim;
            q = qkv.narrow(-1, 0, qn);
            k = qkv.narrow(-1, qn, kn);
            v = qkv.narrow(-1, qn + kn, kn);
        }
        else
        {
            q = q_proj!.forward(x);
            k = k_proj!.forward(x);
            v = v_proj!.forward(x);
        }
        q = q.view(b, t, _heads, _headDim);
        k = k.view(b, t, _kvHeads, _headDim);
        v = v.view(b, t, _kvHeads, _headDim);
        if (q_norm is not null)
        {
            q = q_norm.forward(q);
            k = k_norm!.forward(k);
        }
        q = RotaryEmbedding.ApplyHeadsLast(q, cos, sin, mayOverwrite: false);
        k = RotaryEmbedding.ApplyHeadsLast(k, cos, sin, mayOverwrite: false);
        v = v.transpose(1, 2);
        if (cache is not null) (k, v) = cache.Append(layer, k, v);

        var o = _softcap is null ? Sdpa(q, k, v, mask, b, t) : Eager(q, k, v, mask, b, t);
        return o_proj.forward(o);
    }

    Tensor Sdpa(Tensor q, Tensor k, Tensor v, AttentionMask mask, long b, long t)
    {
        var rep = _heads / _kvHeads;
        // SDPA in TorchSharp 0.107 has no scale argument: it uses 1/sqrt(D). Fold any other scale into q.
        var defaultScale = 1.0 / Math.Sqrt(_headDim);
        if (Math.Abs(_scale - defaultScale) > 1e-12 * defaultScale) q = q * (_scale / defaultScale);
        if (mask.Mask is null && mask.IsCausal)
        {
            // Plain causal prefill/training: expand K/V to all heads so the fused causal kernels apply.
            if (rep > 1)
            {
                ForwardTrace.Mark(t, "attn: (before expand)");
                var kt = k.shape[2];
                k = k.unsqueeze(2).expand(b, _kvHeads, rep, kt, _headDim).reshape(b, _heads, kt, _headDim);
                v = v.unsqueeze(2).expand(b, _kvHeads, rep, kt, _headDim).reshape(b, _heads, kt, _headDim);
            }
            ForwardTrace.Mark(t, "attn: kv expand");
            // q may be a slice of the joint q/k RoPE output (rows strided by the key heads); give the fused
            // kernels a dense tensor.
            var full = nn.functional.scaled_dot_product_attention(q.contiguous(), k, v, is_casual: true);
            ForwardTrace.Mark(t, "attn: sdpa kernel");
            return full.transpose(1, 2).reshape(b, t, _heads * _headDim);
        }
        var qf = q.reshape(b, _kvHeads, rep * t, _headDim);
        var o = mask.Mask is null
            ? nn.functional.scaled_dot_product_attention(qf, k, v)
            : nn.functional.scaled_dot_product_attention(qf, k, v, attn_mask: mask.AdditiveFolded ?? (rep > 1 ? mask.Folded : mask.Mask));
        return o.reshape(b, _heads, t, _headDim).transpose(1, 2).reshape(b, t, _heads * _headDim);
    }

    Tensor Eager(Tensor q, Tensor k, Tensor v, AttentionMask mask, long b, long t)
    {
        // Soft-capped scores (Gemma 2) need the scores themselves: tanh(s / cap) * cap before the mask.
        var rep = _heads / _kvHeads;
        var m = (rep > 1 ? mask.Folded : mask.Mask) ?? throw new InvalidOperationException("soft-capped attention needs an explicit mask");
        var qf = q.reshape(b, _kvHeads, rep * t, _headDim);
        var scores = qf.matmul(k.transpose(2, 3)) * _scale;
        var cap = _softcap!.Value;
        scores = (scores / cap).tanh() * cap;
        scores = scores.masked_fill(m.logical_not(), Scalars.NegativeInfinity);
        var p = nn.functional.softmax(scores, -1, ScalarType.Float32).to_type(q.dtype);
        var o = p.matmul(v);
        return o.reshape(b, _heads, t, _headDim).transpose(1, 2).reshape(b, t, _heads * _headDim);
    }
}
