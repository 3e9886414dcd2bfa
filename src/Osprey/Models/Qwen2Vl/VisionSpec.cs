namespace Osprey.Models.Qwen2Vl;

/// <summary>The vision tower's shape, read from vision_config for one of the two designs. Windowed (Qwen2.5-VL):
/// RMSNorm, gated MLP and window attention outside FullAttentionBlocks; otherwise (Qwen2-VL) LayerNorm, fc1/fc2.</summary>
internal sealed record VisionSpec(
    bool Windowed, int Depth, int EmbedDim, int NumHeads, int MlpHidden, string Activation, int InChannels,
    int PatchSize, int TemporalPatchSize, int MergeSize, int OutHidden, int WindowSize, IReadOnlyList<int> FullAttentionBlocks)
{
    public int HeadDim => EmbedDim / NumHeads;
    public int PatchDim => InChannels * TemporalPatchSize * PatchSize * PatchSize;

    public static VisionSpec From(VisionConfig v, bool qwen25, int textHidden, string file)
    {
        if (qwen25)
        {
            var embed = v.HiddenSize ?? 1280;
            return Check(new VisionSpec(true, v.Depth, embed, v.NumHeads, v.IntermediateSize ?? 3420, v.HiddenAct ?? "silu",
                v.InChannels, v.PatchSize, v.TemporalPatchSize, v.SpatialMergeSize, v.OutHiddenSize ?? textHidden,
                v.WindowSize ?? 112, v.FullAttBlockIndexes ?? [7, 15, 23, 31]), file);
        }
        var e = v.EmbedDim ?? 1280;
        return Check(new VisionSpec(false, v.Depth, e, v.NumHeads, (int)(e * v.MlpRatio), v.HiddenAct ?? "quick_gelu",
            v.InChannels, v.PatchSize, v.TemporalPatchSize, v.SpatialMergeSize, v.HiddenSize ?? textHidden, 0, []), file);
    }

    static VisionSpec Check(VisionSpec s, string file)
    {
        if (s.EmbedDim % s.NumHeads != 0 || s.HeadDim % 4 != 0)
            throw new OspreyException($"{file}: vision_config width {s.EmbedDim} over {s.NumHeads} heads must give a head width divisible by 4 (2-D rotary).");
        if (s.OutHidden <= 0) throw new OspreyException($"{file}: vision_config's output width must be positive.");
        return s;
    }
}
