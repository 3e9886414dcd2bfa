using SkiaSharp;

namespace Osprey.Images;

/// <summary>
/// Decodes PNG, JPEG, WebP, GIF (first frame) and BMP with SkiaSharp (Google's Skia: libpng, libjpeg-turbo, libwebp;
/// MIT; the NoDependencies native build needs nothing from the system). The alpha channel is dropped and the stored
/// colours kept, as transformers' <c>convert_to_rgb</c> does (PIL's <c>convert("RGB")</c>; transformers 5.17's
/// Qwen2-VL processor on tests/fixtures/vl/images/alpha.png confirms it), so a transparent PNG gives the numbers HF
/// gives. (qwen-vl-utils composites onto white instead; transformers' processor is the reference here.) No EXIF
/// rotation and no colour-profile conversion: PIL applies neither either.
/// </summary>
public static class ImageDecoder
{
    /// <summary>Decodes encoded image bytes; <paramref name="source"/> names them in errors.</summary>
    public static RgbImage Decode(byte[] data, string source)
    {
        ArgumentNullException.ThrowIfNull(data);
        using var skData = SKData.CreateCopy(data);
        using var codec = SKCodec.Create(skData)
            ?? throw new OspreyException($"{source}: not an image Osprey can decode (PNG, JPEG, WebP, GIF or BMP expected).");
        var w = codec.Info.Width;
        var h = codec.Info.Height;
        if (w <= 0 || h <= 0 || (long)w * h > 178_956_970)
            throw new OspreyException($"{source}: image size {w}x{h} is empty or larger than PIL's decompression-bomb limit; resize it first.");
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[w * h * 4];
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = rgba)
                result = codec.GetPixels(info, (IntPtr)p, new SKCodecOptions(0));
        }
        if (result != SKCodecResult.Success && result != SKCodecResult.IncompleteInput)
            throw new OspreyException($"{source}: the image could not be decoded ({result}).");
        return new RgbImage(w, h, DropAlpha(rgba, w * h));
    }

    /// <summary>Reads an image file.</summary>
    public static RgbImage Load(string path)
    {
        if (!File.Exists(path)) throw new OspreyException($"{path}: image file not found.");
        return Decode(File.ReadAllBytes(path), path);
    }

    // Unpremultiplied RGBA -> RGB: the colour bytes as stored, whatever the alpha (PIL's RGBA -> RGB conversion).
    static byte[] DropAlpha(byte[] rgba, int count)
    {
        var rgb = new byte[count * 3];
        for (var i = 0; i < count; i++)
        {
            rgb[i * 3] = rgba[i * 4];
            rgb[i * 3 + 1] = rgba[i * 4 + 1];
            rgb[i * 3 + 2] = rgba[i * 4 + 2];
        }
        return rgb;
    }
}
