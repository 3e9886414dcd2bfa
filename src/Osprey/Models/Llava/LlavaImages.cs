using Osprey.Images;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>
/// LLaVA's image arithmetic and features, shared by <see cref="LlavaModel"/> and a LLaVA loaded as a
/// <see cref="CausalLM"/> (serving, training): the token count of an image and the projected feature rows that replace
/// its placeholders (LLaVA-NeXT: the base crop, then the unpadded tile grid with image_newline closing each row).
/// </summary>
internal static class LlavaImages
{
    /// <summary>The language-model tokens <paramref name="image"/> takes (its feature rows).</summary>
    public static int TokenCount(LlavaSpec spec, ImageTiles image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var perCrop = spec.RowsPerCrop;
        if (!spec.Next) return perCrop;
        var (rows, cols, _, _) = Grid(spec, image);
        var (_, r, _, c) = AnyRes.Unpadded(image.OriginalHeight, image.OriginalWidth, rows, cols);
        return perCrop + r * (c + 1);
    }

    /// <summary>LLaVA-NeXT: the feature grid's rows and columns over the tiles, and the tiles per column and row.</summary>
    public static (int Rows, int Cols, int TilesHigh, int TilesWide) Grid(LlavaSpec spec, ImageTiles image)
    {
        var size = spec.Vision.ImageSize;
        var best = AnyRes.SelectBestResolution(image.OriginalHeight, image.OriginalWidth, spec.Pinpoints);
        int th = best.Height / size, tw = best.Width / size, side = spec.Vision.PatchesPerSide;
        if (image.Tiles != 1 + th * tw)
            throw new OspreyException($"an image of {image.OriginalWidth}x{image.OriginalHeight} needs 1 + {th}x{tw} crops for config.json's image_grid_pinpoints but the processor gave {image.Tiles}; preprocessor_config.json and config.json must list the same pinpoints.");
        return (th * side, tw * side, th, tw);
    }

    /// <summary>Refuses crops of another size than the tower takes.</summary>
    public static void CheckCrops(LlavaSpec spec, ImageTiles image)
    {
        var s = spec.Vision;
        if (image.Height != s.ImageSize || image.Width != s.ImageSize)
            throw new OspreyException($"the image processor gives {image.Width}x{image.Height} crops but the vision tower takes {s.ImageSize}x{s.ImageSize}; preprocessor_config.json does not match config.json.");
    }

    /// <summary>The projected image features [rows, hidden] of <paramref name="images"/>, image after image.</summary>
    public static Tensor Features(LlavaSpec spec, VisionEncoder tower, MultiModalProjector projector, Tensor? newline,
        IReadOnlyList<ImageTiles> images, Device device, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var s = spec.Vision;
        foreach (var i in images) CheckCrops(spec, i);
        tower.CountImages(images.Count);
        var pixels = tower.Staging.Stage(images.Select(i => i.PixelValues), [images.Sum(i => (long)i.Tiles), s.Channels, s.ImageSize, s.ImageSize], device, dtype);
        var states = tower.HiddenStates(pixels, spec.FeatureLayers.Max());
        var selected = spec.FeatureLayers.Select(l => spec.DropFirst ? states[l].narrow(1, 1, states[l].shape[1] - 1) : states[l]).ToList();
        var features = projector.forward(selected.Count == 1 ? selected[0] : cat(selected, -1)); // [crops, rows, hidden]
        if (!spec.Next) return features.reshape(-1, features.shape[^1]).MoveToOuterDisposeScope();
        var parts = new List<Tensor>();
        long at = 0;
        var side = s.PatchesPerSide;
        foreach (var image in images)
        {
            var f = features.narrow(0, at, image.Tiles);
            at += image.Tiles;
            parts.Add(f[0]);
            var hidden = f.shape[^1];
            if (image.Tiles == 1)
            {
                parts.Add(newline!.view(1, -1).to_type(f.dtype));
                continue;
            }
            var (rows, cols, th, tw) = Grid(spec, image);
            // Tiles row by row, each side x side: to one [hidden, rows, cols] map of the padded picture.
            var grid = f.narrow(0, 1, image.Tiles - 1).view(th, tw, side, side, hidden).permute(4, 0, 2, 1, 3).reshape(hidden, rows, cols);
            var (top, r, left, c) = AnyRes.Unpadded(image.OriginalHeight, image.OriginalWidth, rows, cols);
            grid = grid.narrow(1, top, r).narrow(2, left, c);
            var nl = newline!.view(hidden, 1, 1).expand(hidden, r, 1).to_type(grid.dtype);
            parts.Add(cat([grid, nl], 2).reshape(hidden, -1).transpose(0, 1));
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }
}
