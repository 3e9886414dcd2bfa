using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Qwen2Vl;

/// <summary>A vision block's MLP: fc1 → act → fc2 (Qwen2-VL, quick_gelu) or down(act(gate) * up) with biases (Qwen2.5-VL).</summary>
internal sealed class VisionMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    LinearLayer? fc1, fc2, gate_proj, up_proj, down_proj;
#pragma warning restore IDE0044
    readonly string _act;

    public VisionMlp(VisionSpec s, ScalarType dtype, Device device) : base("VisionMlp")
    {
        _act = s.Activation;
        if (s.Windowed)
        {
            gate_proj = new LinearLayer(s.EmbedDim, s.MlpHidden, true, dtype, device);
            up_proj = new LinearLayer(s.EmbedDim, s.MlpHidden, true, dtype, device);
            down_proj = new LinearLayer(s.MlpHidden, s.EmbedDim, true, dtype, device);
        }
        else
        {
            fc1 = new LinearLayer(s.EmbedDim, s.MlpHidden, true, dtype, device);
            fc2 = new LinearLayer(s.MlpHidden, s.EmbedDim, true, dtype, device);
        }
        RegisterComponents();
    }

    internal static Tensor Activate(Tensor x, string act) => act switch
    {
        "quick_gelu" => x * (x * 1.702).sigmoid(),
        "silu" => nn.functional.silu(x),
        "gelu" => nn.functional.gelu(x),
        "gelu_pytorch_tanh" => nn.functional.gelu(x, GELU.Approximate.tanh),
        _ => throw new OspreyException($"vision_config hidden_act '{act}' is not supported (quick_gelu, silu, gelu, gelu_pytorch_tanh)."),
    };

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = gate_proj is not null
            ? down_proj!.forward(Activate(gate_proj.forward(x), _act) * up_proj!.forward(x))
            : fc2!.forward(Activate(fc1!.forward(x), _act));
        return y.MoveToOuterDisposeScope();
    }
}
