using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>The encoder's "embeddings": a patch convolution (kernel = stride = patch_size; bias only in SigLIP), CLIP's
/// learned class token in front, and learned absolute position embeddings added.</summary>
internal sealed class VisionEmbeddings : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    Conv2d patch_embedding;
    Parameter? class_embedding;
    TorchSharp.Modules.Embedding position_embedding;
#pragma warning restore IDE0044
    readonly EncoderSpec _s;

    public VisionEmbeddings(EncoderSpec s, ScalarType dtype, Device device) : base("VisionEmbeddings")
    {
        _s = s;
        patch_embedding = nn.Conv2d(s.Channels, s.Hidden, kernel_size: s.PatchSize, stride: s.PatchSize, bias: s.Siglip, device: device, dtype: dtype);
        if (!s.Siglip) class_embedding = new Parameter(empty(s.Hidden, dtype: dtype, device: device), requires_grad: false);
        position_embedding = nn.Embedding(s.Positions, s.Hidden, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>pixel values [N, C, H, W] (H = W = image_size) → [N, positions, hidden].</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var n = pixels.shape[0];
        var h = patch_embedding.forward(pixels.to_type(patch_embedding.weight!.dtype)).flatten(2).transpose(1, 2);
        if (class_embedding is not null) h = cat([class_embedding.view(1, 1, -1).expand(n, 1, -1), h], 1);
        return (h + position_embedding.weight!.unsqueeze(0)).MoveToOuterDisposeScope();
    }
}
