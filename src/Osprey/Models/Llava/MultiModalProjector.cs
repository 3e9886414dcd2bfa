using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>LLaVA's "multi_modal_projector": linear_2(act(linear_1(features))), from the selected vision features
/// (hidden size times the number of feature layers) to the language model's width. Its layers are
/// <see cref="LinearLayer"/>s, which LoRA can adapt (--freeze_aligner false).</summary>
internal sealed class MultiModalProjector : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    LinearLayer linear_1, linear_2;
#pragma warning restore IDE0044
    readonly string _act;

    public MultiModalProjector(long inFeatures, long hidden, bool bias, string act, ScalarType dtype, Device device) : base("MultiModalProjector")
    {
        _act = act;
        linear_1 = new LinearLayer(inFeatures, hidden, bias, dtype, device);
        linear_2 = new LinearLayer(hidden, hidden, bias, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return linear_2.forward(VisionActivation.Apply(linear_1.forward(x), _act)).MoveToOuterDisposeScope();
    }
}
