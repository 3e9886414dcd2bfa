namespace Osprey.Images;

/// <summary>
/// Where an image of a dataset row, a prompt or a request comes from: a file path (relative ones against the
/// dataset's folder), or a data URL (<c>data:image/png;base64,…</c>). http(s) URLs are refused: Osprey fetches
/// nothing at run time, so a row names a local copy instead.
/// </summary>
public static class ImageSource
{
    /// <summary>The encoded bytes <paramref name="reference"/> names; <paramref name="where"/> (file and line) and
    /// <paramref name="baseDirectory"/> (for relative paths) as the caller knows them.</summary>
    public static byte[] Read(string reference, string? baseDirectory, string where)
    {
        if (string.IsNullOrWhiteSpace(reference)) throw new OspreyException($"{where}: an image reference is empty; give a file path or a data: URL.");
        if (reference.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            var comma = reference.IndexOf(',');
            if (comma < 0 || !reference[..comma].EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
                throw new OspreyException($"{where}: a data URL image must be base64 (data:image/png;base64,...).");
            try { return Convert.FromBase64String(reference[(comma + 1)..]); }
            catch (FormatException) { throw new OspreyException($"{where}: the data URL's base64 text is not valid; re-encode the image."); }
        }
        if (reference.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || reference.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            throw new OspreyException($"{where}: image '{Shorten(reference)}' is a web address; Osprey does not download images, so save it and give its path (or a data: URL).");
        var path = reference.StartsWith("file://", StringComparison.OrdinalIgnoreCase) ? new Uri(reference).LocalPath : reference;
        if (!Path.IsPathRooted(path) && baseDirectory is not null) path = Path.Combine(baseDirectory, path);
        if (!File.Exists(path)) throw new OspreyException($"{where}: image file '{path}' not found; fix the path (relative paths are read from the dataset's folder).");
        return File.ReadAllBytes(path);
    }

    /// <summary>Reads and decodes the image.</summary>
    public static RgbImage Load(string reference, string? baseDirectory, string where) =>
        ImageDecoder.Decode(Read(reference, baseDirectory, where), $"{where}: image '{Shorten(reference)}'");

    static string Shorten(string s) => s.Length <= 80 ? s : s[..77] + "...";
}
