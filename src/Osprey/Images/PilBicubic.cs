namespace Osprey.Images;

/// <summary>
/// PIL's <c>Image.resize(size, Image.BICUBIC)</c> on 8-bit RGB, to the bit: HF's image processors resize with PIL, and
/// any other bicubic (Skia's, torchvision's) differs by several levels at edges. Written from Pillow's published
/// algorithm (libImaging/Resample.c): a cubic kernel with a = -0.5 widened by the scale when shrinking (antialias),
/// coefficients normalised per output pixel then fixed to 22 fractional bits, a horizontal pass into 8-bit rows then
/// a vertical pass, each rounding by adding half and clipping to 0..255.
/// </summary>
internal static class PilBicubic
{
    const int PrecisionBits = 32 - 8 - 2;

    static double Filter(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }

    /// <summary>Per output index: the first input index, the number of inputs, and their fixed-point weights.</summary>
    static (int[] Bounds, int[] Weights, int KSize) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        var filterScale = scale < 1.0 ? 1.0 : scale;
        var support = 2.0 * filterScale;
        var ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        for (var xx = 0; xx < outSize; xx++)
        {
            var center = (xx + 0.5) * scale;
            var ss = 1.0 / filterScale;
            // C casts truncate toward zero, as (int) does here.
            var xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            var xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            var ww = 0.0;
            for (var x = 0; x < xmax; x++)
            {
                var w = Filter((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (var x = 0; x < ksize; x++)
            {
                var v = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
                weights[xx * ksize + x] = v < 0 ? (int)(-0.5 + v * (1 << PrecisionBits)) : (int)(0.5 + v * (1 << PrecisionBits));
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        return (bounds, weights, ksize);
    }

    static byte Clip8(int v)
    {
        var s = v >> PrecisionBits;
        return s < 0 ? (byte)0 : s > 255 ? (byte)255 : (byte)s;
    }

    /// <summary>Resizes <paramref name="image"/> to <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static RgbImage Resize(RgbImage image, int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), "sizes must be positive");
        var src = image.Pixels;
        int inW = image.Width, inH = image.Height;
        if (width != inW)
        {
            var (b, k, ks) = Coefficients(inW, width);
            var dst = new byte[width * inH * 3];
            for (var y = 0; y < inH; y++)
                for (var xx = 0; xx < width; xx++)
                {
                    int xmin = b[xx * 2], n = b[xx * 2 + 1];
                    for (var c = 0; c < 3; c++)
                    {
                        var ss = 1 << (PrecisionBits - 1);
                        for (var x = 0; x < n; x++) ss += src[(y * inW + xmin + x) * 3 + c] * k[xx * ks + x];
                        dst[(y * width + xx) * 3 + c] = Clip8(ss);
                    }
                }
            src = dst;
            inW = width;
        }
        if (height != inH)
        {
            var (b, k, ks) = Coefficients(inH, height);
            var dst = new byte[inW * height * 3];
            for (var yy = 0; yy < height; yy++)
            {
                int ymin = b[yy * 2], n = b[yy * 2 + 1];
                for (var x = 0; x < inW; x++)
                    for (var c = 0; c < 3; c++)
                    {
                        var ss = 1 << (PrecisionBits - 1);
                        for (var y = 0; y < n; y++) ss += src[((ymin + y) * inW + x) * 3 + c] * k[yy * ks + y];
                        dst[(yy * inW + x) * 3 + c] = Clip8(ss);
                    }
            }
            src = dst;
        }
        return new RgbImage(width, height, ReferenceEquals(src, image.Pixels) ? (byte[])src.Clone() : src);
    }
}
