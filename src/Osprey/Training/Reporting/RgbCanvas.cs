namespace Osprey.Training.Reporting;

/// <summary>A 24-bit RGB raster with clipped pixel, line, rectangle and text drawing.</summary>
internal sealed class RgbCanvas
{
    /// <summary>A white canvas of the given size.</summary>
    public RgbCanvas(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 3];
        Array.Fill(Pixels, (byte)255);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Row-major RGB bytes, top row first.</summary>
    public byte[] Pixels { get; }

    /// <summary>Sets one pixel; points outside the canvas are ignored.</summary>
    public void Set(int x, int y, (byte R, byte G, byte B) color)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) return;
        int i = (y * Width + x) * 3;
        Pixels[i] = color.R;
        Pixels[i + 1] = color.G;
        Pixels[i + 2] = color.B;
    }

    /// <summary>The color of one pixel.</summary>
    public (byte R, byte G, byte B) Get(int x, int y)
    {
        int i = (y * Width + x) * 3;
        return (Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    /// <summary>Fills the rectangle [x0, x1] × [y0, y1] (inclusive, clipped).</summary>
    public void Fill(int x0, int y0, int x1, int y1, (byte R, byte G, byte B) color)
    {
        for (int y = Math.Max(0, y0); y <= Math.Min(Height - 1, y1); y++)
            for (int x = Math.Max(0, x0); x <= Math.Min(Width - 1, x1); x++)
                Set(x, y, color);
    }

    /// <summary>A Bresenham line from (x0, y0) to (x1, y1); <paramref name="thickness"/> 2 also draws it one pixel lower.</summary>
    public void Line(int x0, int y0, int x1, int y1, (byte R, byte G, byte B) color, int thickness = 1)
    {
        int dx = Math.Abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
        int dy = -Math.Abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
        int err = dx + dy;
        while (true)
        {
            for (int t = 0; t < thickness; t++) Set(x0, y0 + t, color);
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * err;
            if (e2 >= dy)
            {
                err += dy;
                x0 += sx;
            }
            if (e2 <= dx)
            {
                err += dx;
                y0 += sy;
            }
        }
    }

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (x, y), each font pixel a <paramref name="scale"/>-square.</summary>
    public void Text(int x, int y, string text, (byte R, byte G, byte B) color, int scale = 1)
    {
        foreach (var c in text)
        {
            var glyph = BitmapFont.Glyph(c);
            for (int r = 0; r < BitmapFont.GlyphHeight; r++)
                for (int col = 0; col < BitmapFont.GlyphWidth; col++)
                    if (glyph[r * BitmapFont.GlyphWidth + col])
                        Fill(x + col * scale, y + r * scale, x + (col + 1) * scale - 1, y + (r + 1) * scale - 1, color);
            x += BitmapFont.Advance * scale;
        }
    }
}
