using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>The encoder layer's MLP: fc2(act(fc1(x))), both with bias.</summary>
internal sealed class EncoderMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    Linear fc1, fc2;
#pragma warning restore IDE0044
    readonly string _act;

    public EncoderMlp(EncoderSpec s, ScalarType dtype, Device device) : base("EncoderMlp")
    {
        _act = s.Activation;
        fc1 = nn.Linear(s.Hidden, s.Intermediate, true, device, dtype);
        fc2 = nn.Linear(s.Intermediate, s.Hidden, true, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(VisionActivation.Apply(fc1.forward(x), _act)).MoveToOuterDisposeScope();
    }
}
