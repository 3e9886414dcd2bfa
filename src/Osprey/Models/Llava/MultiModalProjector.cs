using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>LLaVA's "multi_modal_projector": linear_2(act(linear_1(features))), from the selected vision features
/// (hidden size times the number of feature layers) to the language model's width.</summary>
internal sealed class MultiModalProjector : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    Linear linear_1, linear_2;
#pragma warning restore IDE0044
    readonly string _act;

    public MultiModalProjector(long inFeatures, long hidden, bool bias, string act, ScalarType dtype, Device device) : base("MultiModalProjector")
    {
        _act = act;
        linear_1 = nn.Linear(inFeatures, hidden, bias, device, dtype);
        linear_2 = nn.Linear(hidden, hidden, bias, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return linear_2.forward(VisionActivation.Apply(linear_1.forward(x), _act)).MoveToOuterDisposeScope();
    }
}
