using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Qwen2Vl;

/// <summary>The ViT's attention: one qkv projection, rotary in float32 as transformers does, softmax(q kᵀ/√d) v
/// inside each segment of <c>cu_seqlens</c>, then proj.</summary>
internal sealed class VisionAttention : nn.Module
{
#pragma warning disable IDE0044
    LinearLayer qkv, proj;
#pragma warning restore IDE0044
    readonly int _heads, _headDim;

    public VisionAttention(VisionSpec s, ScalarType dtype, Device device) : base("VisionAttention")
    {
        _heads = s.NumHeads;
        _headDim = s.HeadDim;
        qkv = new LinearLayer(s.EmbedDim, 3L * s.EmbedDim, true, dtype, device);
        proj = new LinearLayer(s.EmbedDim, s.EmbedDim, true, dtype, device);
        RegisterComponents();
    }

    static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        var half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }

    /// <summary>x [N, E]; cos/sin [N, head_dim] (float32); <paramref name="cuSeqlens"/> segment bounds, 0 first.</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, long[] cuSeqlens)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        var parts = qkv.forward(x).view(n, 3, _heads, _headDim).permute(1, 0, 2, 3);
        var c = cos.unsqueeze(-2);
        var s = sin.unsqueeze(-2);
        var q = Rotate(parts[0].to_type(ScalarType.Float32), c, s).to_type(x.dtype);
        var k = Rotate(parts[1].to_type(ScalarType.Float32), c, s).to_type(x.dtype);
        var v = parts[2];
        var outs = new List<Tensor>();
        for (var i = 1; i < cuSeqlens.Length; i++)
        {
            long start = cuSeqlens[i - 1], len = cuSeqlens[i] - start;
            if (len == 0) continue;
            var qs = q.narrow(0, start, len).transpose(0, 1).unsqueeze(0);
            var ks = k.narrow(0, start, len).transpose(0, 1).unsqueeze(0);
            var vs = v.narrow(0, start, len).transpose(0, 1).unsqueeze(0);
            var o = nn.functional.scaled_dot_product_attention(qs, ks, vs); // [1, H, L, D], scale 1/sqrt(D)
            outs.Add(o.squeeze(0).transpose(0, 1).reshape(len, _heads * _headDim));
        }
        return proj.forward(cat(outs, 0)).MoveToOuterDisposeScope();
    }
}
