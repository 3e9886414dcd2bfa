using SkiaSharp;

namespace Osprey.Images;

/// <summary>
/// Decodes PNG, JPEG, WebP, GIF (first frame) and BMP with SkiaSharp (Google's Skia: libpng, libjpeg-turbo, libwebp;
/// MIT; the NoDependencies native build needs nothing from the system). Transparent pixels are composited onto white
/// with PIL's integer arithmetic, as transformers' <c>convert_to_rgb</c> does, so a transparent PNG gives the numbers
/// HF gives. No EXIF rotation and no colour-profile conversion: PIL applies neither either.
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
        return new RgbImage(w, h, CompositeOnWhite(rgba, w * h));
    }

    /// <summary>Reads an image file.</summary>
    public static RgbImage Load(string path)
    {
        if (!File.Exists(path)) throw new OspreyException($"{path}: image file not found.");
        return Decode(File.ReadAllBytes(path), path);
    }

    // PIL's Image.alpha_composite(white, image) (AlphaComposite.c, PRECISION_BITS 7) with an opaque white destination:
    // coef1 = a * 128, coef2 = (255 - a) * 128, out = SHIFTFORDIV255(c * coef1 + 255 * coef2 + (0x80 << 7)) >> 7.
    static byte[] CompositeOnWhite(byte[] rgba, int count)
    {
        var rgb = new byte[count * 3];
        for (var i = 0; i < count; i++)
        {
            var a = (uint)rgba[i * 4 + 3];
            for (var c = 0; c < 3; c++)
            {
                var v = (uint)rgba[i * 4 + c];
                if (a == 255) { rgb[i * 3 + c] = (byte)v; continue; }
                if (a == 0) { rgb[i * 3 + c] = 255; continue; }
                var tmp = v * (a << 7) + 255u * ((255u - a) << 7) + (0x80u << 7);
                rgb[i * 3 + c] = (byte)((((tmp >> 8) + tmp) >> 8) >> 7);
            }
        }
        return rgb;
    }
}
