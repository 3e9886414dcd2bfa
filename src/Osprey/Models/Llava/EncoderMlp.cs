using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>The encoder layer's MLP: fc2(act(fc1(x))), both with bias (<see cref="LinearLayer"/>s, which LoRA can adapt).</summary>
internal sealed class EncoderMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    LinearLayer fc1, fc2;
#pragma warning restore IDE0044
    readonly string _act;

    public EncoderMlp(EncoderSpec s, ScalarType dtype, Device device) : base("EncoderMlp")
    {
        _act = s.Activation;
        fc1 = new LinearLayer(s.Hidden, s.Intermediate, true, dtype, device);
        fc2 = new LinearLayer(s.Intermediate, s.Hidden, true, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(VisionActivation.Apply(fc1.forward(x), _act)).MoveToOuterDisposeScope();
    }
}
