namespace Osprey.Tests.Training.Reporting;

/// <summary>A decoded PNG as 8-bit RGB.</summary>
public sealed record DecodedPng(int Width, int Height, byte[] Pixels, IReadOnlyList<string> ChunkTypes)
{
    /// <summary>The color at (x, y).</summary>
    public (byte R, byte G, byte B) At(int x, int y)
    {
        int i = (y * Width + x) * 3;
        return (Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    /// <summary>All (x, y) whose color is within <paramref name="tolerance"/> of <paramref name="color"/> in every channel.</summary>
    public List<(int X, int Y)> Near((byte R, byte G, byte B) color, int tolerance = 12)
    {
        var found = new List<(int, int)>();
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
            {
                var c = At(x, y);
                if (Math.Abs(c.R - color.R) <= tolerance && Math.Abs(c.G - color.G) <= tolerance && Math.Abs(c.B - color.B) <= tolerance)
                    found.Add((x, y));
            }
        return found;
    }

    /// <summary>How many pixels in the rows [<paramref name="top"/>, <paramref name="bottom"/>) are dark (text and axes: every channel below 100).</summary>
    public int DarkInRows(int top, int bottom)
    {
        int n = 0;
        for (int y = top; y < bottom; y++)
            for (int x = 0; x < Width; x++)
            {
                var c = At(x, y);
                if (c.R < 100 && c.G < 100 && c.B < 100) n++;
            }
        return n;
    }

    /// <summary>How many pixels are not white.</summary>
    public int NonWhite()
    {
        int n = 0;
        for (int i = 0; i < Pixels.Length; i += 3)
            if (Pixels[i] != 255 || Pixels[i + 1] != 255 || Pixels[i + 2] != 255) n++;
        return n;
    }
}
