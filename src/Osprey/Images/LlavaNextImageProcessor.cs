namespace Osprey.Images;

/// <summary>
/// transformers' LlavaNextImageProcessor (PIL backend): the image is resized with PIL's bicubic into the best
/// image_grid_pinpoints resolution (aspect kept, see <see cref="AnyRes"/>), zero-padded evenly to it and cut into
/// crop_size tiles row by row; the whole image resized to size (square) goes first. Every crop then runs the CLIP
/// pipeline (<see cref="ClipImageProcessor"/>: resize, centre crop, rescale, normalise).
/// </summary>
public sealed record LlavaNextImageProcessor
{
    /// <summary>The per-crop settings and the pinpoints.</summary>
    public ClipImageProcessor Clip { get; init; } = new();

    /// <summary>The settings of <paramref name="modelFolder"/> (preprocessor_config.json or processor_config.json);
    /// <paramref name="pinpoints"/> (config.json's image_grid_pinpoints) when the processor file lists none.</summary>
    public static LlavaNextImageProcessor FromFolder(string modelFolder, IReadOnlyList<(int Height, int Width)> pinpoints)
    {
        var clip = ClipImageProcessor.FromFolder(modelFolder);
        if (clip.GridPinpoints.Count == 0) clip = clip with { GridPinpoints = pinpoints };
        return new LlavaNextImageProcessor { Clip = clip };
    }

    /// <summary>The image's crops (base image first) and its original size.</summary>
    public ImageTiles Process(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var c = Clip;
        var best = AnyRes.SelectBestResolution(image.Height, image.Width, c.GridPinpoints);
        var (nh, nw) = AnyRes.PatchOutputSize(image.Height, image.Width, best);
        var resized = nh == image.Height && nw == image.Width ? image : PilBicubic.Resize(image, nw, nh);
        var padded = Pad(resized, best.Height, best.Width);
        var tile = c.CropHeight;
        var crops = new List<RgbImage>();
        // The base image: size.height x size.width, or shortest_edge squared.
        var (bh, bw) = c.ShortestEdge is int s ? (s, s) : (c.ResizeHeight!.Value, c.ResizeWidth!.Value);
        crops.Add(bh == image.Height && bw == image.Width ? image : PilBicubic.Resize(image, bw, bh));
        for (var y = 0; y < padded.Height; y += tile)
            for (var x = 0; x < padded.Width; x += tile)
                crops.Add(Crop(padded, y, x, Math.Min(tile, padded.Height - y), Math.Min(tile, padded.Width - x)));
        var outs = crops.Select(c.Pipeline).ToList();
        var (h0, w0) = (outs[0].Height, outs[0].Width);
        if (outs.Any(o => o.Height != h0 || o.Width != w0))
            throw new OspreyException($"image {image.Width}x{image.Height}: the LLaVA-NeXT crops come out in different sizes; crop_size and size in preprocessor_config.json must agree with image_grid_pinpoints (multiples of crop_size).");
        var values = new float[outs.Sum(o => o.Values.Length)];
        var at = 0;
        foreach (var o in outs)
        {
            Array.Copy(o.Values, 0, values, at, o.Values.Length);
            at += o.Values.Length;
        }
        return new ImageTiles(values, outs.Count, h0, w0, image.Height, image.Width);
    }

    // Zero (black) padding around the centred image; the odd pixel goes after, as divmod gives.
    static RgbImage Pad(RgbImage img, int height, int width)
    {
        if (img.Height == height && img.Width == width) return img;
        int top = (height - img.Height) / 2, left = (width - img.Width) / 2;
        var px = new byte[height * width * 3];
        for (var y = 0; y < img.Height; y++)
            Array.Copy(img.Pixels, y * img.Width * 3, px, ((y + top) * width + left) * 3, img.Width * 3);
        return new RgbImage(width, height, px);
    }

    static RgbImage Crop(RgbImage img, int top, int left, int h, int w)
    {
        var px = new byte[h * w * 3];
        for (var y = 0; y < h; y++)
            Array.Copy(img.Pixels, ((top + y) * img.Width + left) * 3, px, y * w * 3, w * 3);
        return new RgbImage(w, h, px);
    }
}
