namespace Osprey.Images;

/// <summary>A decoded picture: <paramref name="Width"/> x <paramref name="Height"/> pixels, 8-bit RGB interleaved row
/// by row (what PIL's <c>convert("RGB")</c> gives and every HF image processor starts from).</summary>
/// <param name="Width">Pixels per row.</param>
/// <param name="Height">Rows.</param>
/// <param name="Pixels">Width * Height * 3 bytes, R G B.</param>
public sealed record RgbImage(int Width, int Height, byte[] Pixels);
