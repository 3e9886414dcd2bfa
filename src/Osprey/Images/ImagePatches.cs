namespace Osprey.Images;

/// <summary>
/// One image as Qwen2-VL's vision tower takes it: <see cref="Rows"/> flattened patches of <see cref="PatchDim"/>
/// floats (channel, temporal copy, patch row, patch column), ordered by merge window, and the grid
/// <c>image_grid_thw</c> = (<see cref="GridT"/>, <see cref="GridH"/>, <see cref="GridW"/>) in patches.
/// </summary>
/// <param name="PixelValues">Rows * PatchDim floats, row-major.</param>
/// <param name="GridT">Temporal patches (1 for an image).</param>
/// <param name="GridH">Patch rows.</param>
/// <param name="GridW">Patch columns.</param>
/// <param name="PatchDim">channels * temporal_patch_size * patch_size^2.</param>
public sealed record ImagePatches(float[] PixelValues, int GridT, int GridH, int GridW, int PatchDim) : ProcessedImage
{
    /// <summary>Patches in <see cref="PixelValues"/>.</summary>
    public int Rows => GridT * GridH * GridW;

    /// <summary>Language-model tokens this image takes: the patches over merge_size^2.</summary>
    public int TokenCount(int mergeSize) => Rows / (mergeSize * mergeSize);
}
