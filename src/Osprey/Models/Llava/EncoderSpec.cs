namespace Osprey.Models.Llava;

/// <summary>
/// The vision encoder's shape. CLIP: a class token, pre_layrnorm, quick_gelu, LayerNorm eps 1e-5, bias-free patch
/// convolution. SigLIP: no class token and no pre-norm, gelu (tanh), eps 1e-6, a patch convolution with bias.
/// </summary>
internal sealed record EncoderSpec(
    bool Siglip, int Hidden, int Intermediate, int Layers, int Heads, int Channels, int ImageSize, int PatchSize,
    string Activation, double Eps)
{
    public int HeadDim => Hidden / Heads;
    public int PatchesPerSide => ImageSize / PatchSize;
    /// <summary>Positions the encoder runs on: the patches, plus CLIP's class token.</summary>
    public int Positions => PatchesPerSide * PatchesPerSide + (Siglip ? 0 : 1);

    public static EncoderSpec From(EncoderConfig? v, string file)
    {
        // transformers' defaults: LlavaConfig's CLIP (llava-1.5's) when vision_config is absent, else the type's own.
        if (v is null) return new EncoderSpec(false, 1024, 4096, 24, 16, 3, 336, 14, "quick_gelu", 1e-5);
        var type = v.ModelType ?? "clip_vision_model";
        var siglip = type switch
        {
            "clip_vision_model" => false,
            "siglip_vision_model" => true,
            _ => throw new OspreyException($"{file}: vision_config model_type '{type}' is not supported; LLaVA models here use clip_vision_model or siglip_vision_model."),
        };
        var s = new EncoderSpec(siglip, v.HiddenSize ?? 768, v.IntermediateSize ?? 3072, v.NumHiddenLayers ?? 12,
            v.NumAttentionHeads ?? 12, v.NumChannels ?? 3, v.ImageSize ?? 224, v.PatchSize ?? (siglip ? 16 : 32),
            v.HiddenAct ?? (siglip ? "gelu_pytorch_tanh" : "quick_gelu"), v.LayerNormEps ?? (siglip ? 1e-6 : 1e-5));
        if (s.Hidden <= 0 || s.Heads <= 0 || s.Hidden % s.Heads != 0)
            throw new OspreyException($"{file}: vision_config hidden_size {s.Hidden} must be a positive multiple of num_attention_heads {s.Heads}.");
        if (s.PatchSize <= 0 || s.ImageSize % s.PatchSize != 0)
            throw new OspreyException($"{file}: vision_config image_size {s.ImageSize} must be a multiple of patch_size {s.PatchSize}.");
        if (s.Layers <= 0) throw new OspreyException($"{file}: vision_config num_hidden_layers must be positive.");
        return s;
    }
}
