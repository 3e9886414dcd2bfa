namespace Osprey.Models.Llava;

/// <summary>
/// What a LLaVA config adds to its language model: the vision encoder, which of its hidden states feed the projector
/// (<see cref="FeatureLayers"/>, absolute indexes into hidden_states, concatenated in order when several),
/// whether CLIP's class position is dropped (vision_feature_select_strategy "default") or kept ("full"), the
/// projector, the image placeholder id, and for LLaVA-NeXT the anyres pinpoints.
/// </summary>
internal sealed record LlavaSpec(
    EncoderSpec Vision, IReadOnlyList<int> FeatureLayers, bool DropFirst, string ProjectorActivation, bool ProjectorBias,
    int ImageTokenId, bool Next, IReadOnlyList<(int Height, int Width)> Pinpoints)
{
    /// <summary>Feature rows one crop gives.</summary>
    public int RowsPerCrop => Vision.Positions - (DropFirst ? 1 : 0);
}
