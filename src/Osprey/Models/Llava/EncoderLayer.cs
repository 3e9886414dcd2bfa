using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>One pre-norm encoder layer of CLIP and SigLIP: x + self_attn(layer_norm1(x)), then + mlp(layer_norm2(x)).</summary>
internal sealed class EncoderLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    LayerNorm layer_norm1, layer_norm2;
    EncoderAttention self_attn;
    EncoderMlp mlp;
#pragma warning restore IDE0044

    public EncoderLayer(EncoderSpec s, ScalarType dtype, Device device) : base("EncoderLayer")
    {
        layer_norm1 = nn.LayerNorm(s.Hidden, s.Eps, device: device, dtype: dtype);
        layer_norm2 = nn.LayerNorm(s.Hidden, s.Eps, device: device, dtype: dtype);
        self_attn = new EncoderAttention(s, dtype, device);
        mlp = new EncoderMlp(s, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.forward(layer_norm1.forward(x));
        return (h + mlp.forward(layer_norm2.forward(h))).MoveToOuterDisposeScope();
    }
}
