using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Qwen2Vl;

/// <summary>merger: norm (ln_q), then each merge_size² neighbouring patches concatenated and mapped by
/// mlp.0 → GELU → mlp.2 to the language model's width.</summary>
internal sealed class PatchMerger : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    nn.Module<Tensor, Tensor> ln_q;
    Sequential mlp;
#pragma warning restore IDE0044
    readonly long _merged;

    public PatchMerger(VisionSpec s, ScalarType dtype, Device device) : base("PatchMerger")
    {
        _merged = (long)s.EmbedDim * s.MergeSize * s.MergeSize;
        ln_q = VisionBlock.Norm(s, dtype, device);
        mlp = nn.Sequential(
            ("0", new LinearLayer(_merged, _merged, true, dtype, device)),
            ("1", nn.GELU()),
            ("2", new LinearLayer(_merged, s.OutHidden, true, dtype, device)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return mlp.forward(ln_q.forward(x).view(-1, _merged)).MoveToOuterDisposeScope();
    }
}
