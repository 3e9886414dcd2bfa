using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Qwen2Vl;

/// <summary>
/// One pre-norm ViT block: x + attn(norm1(x)), then + mlp(norm2(x)). Attention is bidirectional within each segment
/// (one image frame, or one window in Qwen2.5-VL), with the 2-D rotary embedding on queries and keys.
/// </summary>
internal sealed class VisionBlock : nn.Module
{
#pragma warning disable IDE0044
    nn.Module<Tensor, Tensor> norm1, norm2;
    VisionAttention attn;
    VisionMlp mlp;
#pragma warning restore IDE0044

    public VisionBlock(VisionSpec s, ScalarType dtype, Device device) : base("VisionBlock")
    {
        norm1 = Norm(s, dtype, device);
        norm2 = Norm(s, dtype, device);
        attn = new VisionAttention(s, dtype, device);
        mlp = new VisionMlp(s, dtype, device);
        RegisterComponents();
    }

    internal static nn.Module<Tensor, Tensor> Norm(VisionSpec s, ScalarType dtype, Device device) =>
        s.Windowed ? new RmsNorm(s.EmbedDim, 1e-6, false, dtype, device) : nn.LayerNorm(s.EmbedDim, 1e-6, device: device, dtype: dtype);

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, long[] segments)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.Forward(norm1.forward(x), cos, sin, segments);
        return (h + mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}
