using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Qwen2Vl;

/// <summary>patch_embed: a Conv3d whose kernel equals its stride (temporal x patch x patch, no bias) over each
/// flattened patch, i.e. one linear map of the patch's values; kept as the Conv3d so the weight's name and shape
/// are the checkpoint's.</summary>
internal sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    Conv3d proj;
#pragma warning restore IDE0044
    readonly VisionSpec _s;

    public PatchEmbed(VisionSpec s, ScalarType dtype, Device device) : base("PatchEmbed")
    {
        _s = s;
        proj = nn.Conv3d(s.InChannels, s.EmbedDim, (s.TemporalPatchSize, s.PatchSize, s.PatchSize),
            stride: (s.TemporalPatchSize, s.PatchSize, s.PatchSize), bias: false, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>pixel_values [N, C*T*P*P] → [N, embed].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var w = proj.weight!;
        // Same contraction as the convolution (every kernel position meets exactly one input value).
        var y = nn.functional.linear(x.to_type(w.dtype), w.reshape(_s.EmbedDim, -1));
        return y.MoveToOuterDisposeScope();
    }
}
