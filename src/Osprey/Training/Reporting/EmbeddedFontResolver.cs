using System.Reflection;
using ScottPlot;
using SkiaSharp;

namespace Osprey.Training.Reporting;

/// <summary>
/// Gives ScottPlot the DejaVu Sans font embedded in this assembly for <see cref="FontName"/>. Skia's
/// dependency-free Linux build finds no font on a machine without installed fonts (a bare Debian
/// container), and then draws no text at all; with the embedded font the plots look the same everywhere.
/// </summary>
internal sealed class EmbeddedFontResolver : IFontResolver
{
    /// <summary>The family name the plots ask for.</summary>
    public const string FontName = "Osprey DejaVu Sans";

    private const string ResourceName = "Osprey.Training.Reporting.DejaVuSans.ttf";
    private static readonly Lazy<SKTypeface> Typeface = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing spacing) =>
        fontName == FontName ? Typeface.Value : null;

    public SKTypeface? CreateTypeface(string fontName, bool bold, bool italic) =>
        fontName == FontName ? Typeface.Value : null;

    private static SKTypeface Load()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"The embedded font {ResourceName} is missing from {Assembly.GetExecutingAssembly().Location}; rebuild Osprey.");
        // Skia reads glyphs lazily, so it gets its own copy of the bytes rather than the resource stream.
        var bytes = new MemoryStream();
        stream.CopyTo(bytes);
        return SKTypeface.FromData(SKData.CreateCopy(bytes.ToArray()))
            ?? throw new InvalidOperationException($"Skia could not read the embedded font {ResourceName}.");
    }
}
