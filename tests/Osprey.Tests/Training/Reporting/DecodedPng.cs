namespace Osprey.Tests.Training.Reporting;

/// <summary>A decoded 8-bit RGB PNG.</summary>
public sealed record DecodedPng(int Width, int Height, byte[] Pixels, IReadOnlyList<string> ChunkTypes)
{
    /// <summary>The color at (x, y).</summary>
    public (byte R, byte G, byte B) At(int x, int y)
    {
        int i = (y * Width + x) * 3;
        return (Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    /// <summary>All (x, y) with exactly <paramref name="color"/>.</summary>
    public List<(int X, int Y)> Find((byte R, byte G, byte B) color)
    {
        var found = new List<(int, int)>();
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
                if (At(x, y) == color) found.Add((x, y));
        return found;
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
