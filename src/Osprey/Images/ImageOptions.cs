using Osprey.Options;

namespace Osprey.Images;

/// <summary>
/// Image-size flags as ms-swift spells them. Unset, the MAX_PIXELS / MIN_PIXELS environment variables (ms-swift's
/// users' usual out-of-memory fix) and then the model folder's preprocessor_config.json decide.
/// </summary>
public sealed record ImageOptions
{
    /// <summary>--max_pixels: the most pixels an image keeps after resizing (Qwen2-VL's smart_resize).</summary>
    [Option("max_pixels", "Shrink larger images to at most N pixels before the vision tower (Qwen2-VL smart_resize); default: MAX_PIXELS, else preprocessor_config.json.", Placeholder = "N")]
    public long? MaxPixels { get; init; }

    /// <summary>--min_pixels: the fewest pixels an image gets after resizing.</summary>
    [Option("min_pixels", "Enlarge smaller images to at least N pixels; default: MIN_PIXELS, else preprocessor_config.json.", Placeholder = "N")]
    public long? MinPixels { get; init; }

    /// <summary>The flag, else the environment variable <paramref name="variable"/>, else null.</summary>
    internal static long? Resolve(long? flag, string variable)
    {
        if (flag is not null) return flag;
        var env = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(env)) return null;
        return long.TryParse(env.Trim(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0
            ? v
            : throw new OspreyException($"environment variable {variable}={env}: expected a positive whole number of pixels, e.g. {variable}=1003520.");
    }
}
