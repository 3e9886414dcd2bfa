using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>
/// The "vision_model" of transformers' CLIPVisionModel / SiglipVisionModel: embeddings, CLIP's pre_layrnorm (its
/// output is hidden_states[0]), the encoder, and post_layernorm. LLaVA reads encoder hidden states, so
/// post_layernorm is loaded (the checkpoints hold it) but not applied.
/// </summary>
internal sealed class VisionTransformer : nn.Module
{
#pragma warning disable IDE0044
    VisionEmbeddings embeddings;
    LayerNorm? pre_layrnorm;
    Encoder encoder;
    LayerNorm post_layernorm;
#pragma warning restore IDE0044
    readonly EncoderSpec _s;

    public VisionTransformer(EncoderSpec s, ScalarType dtype, Device device) : base("VisionTransformer")
    {
        _s = s;
        embeddings = new VisionEmbeddings(s, dtype, device);
        if (!s.Siglip) pre_layrnorm = nn.LayerNorm(s.Hidden, s.Eps, device: device, dtype: dtype);
        encoder = new Encoder(s, dtype, device);
        post_layernorm = nn.LayerNorm(s.Hidden, s.Eps, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>pixel values [N, C, S, S] → hidden_states[0..<paramref name="upTo"/>], each [N, positions, hidden].</summary>
    public List<Tensor> HiddenStates(Tensor pixels, int upTo)
    {
        if (pixels.shape[2] != _s.ImageSize || pixels.shape[3] != _s.ImageSize)
            throw new OspreyException($"the vision tower takes {_s.ImageSize}x{_s.ImageSize} crops but got {pixels.shape[3]}x{pixels.shape[2]}; preprocessor_config.json's crop_size must match vision_config image_size.");
        var h = embeddings.forward(pixels);
        if (pre_layrnorm is not null) h = pre_layrnorm.forward(h);
        return encoder.HiddenStates(h, upTo);
    }
}
