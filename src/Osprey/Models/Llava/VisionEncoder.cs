using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>The "vision_tower": transformers' CLIPVisionModel or SiglipVisionModel, whose only child is "vision_model".
/// SigLIP's attention-pooling "head" is not built: LLaVA never uses it, and its tensors are skipped when loading.</summary>
internal sealed class VisionEncoder : nn.Module
{
#pragma warning disable IDE0044
    VisionTransformer vision_model;
#pragma warning restore IDE0044

    /// <summary>Where a batch's pixel values are gathered before they go to the device.</summary>
    internal Osprey.Images.PixelStaging Staging { get; } = new();

    /// <summary>Images whose crops went through the tower (the training log counts tower passes with it).</summary>
    internal long ImagesEncoded => Interlocked.Read(ref _imagesEncoded);

    long _imagesEncoded;

    /// <summary>Counts <paramref name="images"/> more images through the tower.</summary>
    internal void CountImages(int images) => Interlocked.Add(ref _imagesEncoded, images);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) Staging.Dispose();
        base.Dispose(disposing);
    }

    public VisionEncoder(EncoderSpec s, ScalarType dtype, Device device) : base("VisionEncoder")
    {
        Spec = s;
        vision_model = new VisionTransformer(s, dtype, device);
        RegisterComponents();
    }

    public EncoderSpec Spec { get; }

    /// <summary>See <see cref="VisionTransformer.HiddenStates"/>.</summary>
    public List<Tensor> HiddenStates(Tensor pixels, int upTo) => vision_model.HiddenStates(pixels, upTo);
}
