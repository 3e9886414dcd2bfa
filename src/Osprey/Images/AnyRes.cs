namespace Osprey.Images;

/// <summary>
/// LLaVA-NeXT's "anyres" arithmetic, shared by its image processor and its model (transformers'
/// <c>select_best_resolution</c>, <c>get_patch_output_size</c> and the unpadding of <c>unpad_image</c>). Sizes are
/// (height, width) pairs, as image_grid_pinpoints lists them.
/// </summary>
public static class AnyRes
{
    /// <summary>The pinpoint resolution that keeps most of the image's pixels after an aspect-preserving downscale
    /// into it, ties going to the one wasting least area (the first such in the list).</summary>
    public static (int Height, int Width) SelectBestResolution(int height, int width, IReadOnlyList<(int Height, int Width)> resolutions)
    {
        if (resolutions.Count == 0) throw new OspreyException("image_grid_pinpoints is empty; it must list at least one [height, width] resolution.");
        (int, int) best = resolutions[0];
        long bestEffective = -1, bestWasted = long.MaxValue;
        foreach (var (h, w) in resolutions)
        {
            var scale = Math.Min((double)w / width, (double)h / height);
            // Python's int() truncates toward zero, as the casts do.
            long dw = (long)(width * scale), dh = (long)(height * scale);
            var effective = Math.Min(dw * dh, (long)width * height);
            var wasted = (long)h * w - effective;
            if (effective > bestEffective || (effective == bestEffective && wasted < bestWasted))
            {
                best = (h, w);
                bestEffective = effective;
                bestWasted = wasted;
            }
        }
        return best;
    }

    /// <summary>The size the image is resized to inside <paramref name="target"/> before padding (aspect kept, the
    /// constrained side exact, the other rounded up and capped).</summary>
    public static (int Height, int Width) PatchOutputSize(int height, int width, (int Height, int Width) target)
    {
        var scaleW = (double)target.Width / width;
        var scaleH = (double)target.Height / height;
        return scaleW < scaleH
            ? (Math.Min((int)Math.Ceiling(height * scaleW), target.Height), target.Width)
            : (target.Height, Math.Min((int)Math.Ceiling(width * scaleH), target.Width));
    }

    /// <summary>
    /// Of a feature grid of <paramref name="rows"/> x <paramref name="cols"/> covering the padded tiles, the band that
    /// holds the image of <paramref name="height"/> x <paramref name="width"/>: (first row, rows, first column,
    /// columns). The padding removed is split evenly, as transformers' unpad_image does (round to 7 decimals, then
    /// truncate).
    /// </summary>
    public static (int Top, int Rows, int Left, int Cols) Unpadded(int height, int width, int rows, int cols)
    {
        var originalAspect = (double)width / height;
        var currentAspect = (double)cols / rows;
        if (originalAspect > currentAspect)
        {
            var newHeight = (int)Math.Round(height * ((double)cols / width), 7, MidpointRounding.ToEven);
            var padding = (rows - newHeight) / 2;
            return (padding, rows - 2 * padding, 0, cols);
        }
        var newWidth = (int)Math.Round(width * ((double)rows / height), 7, MidpointRounding.ToEven);
        var pad = (cols - newWidth) / 2;
        return (0, rows, pad, cols - 2 * pad);
    }
}
