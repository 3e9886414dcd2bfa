using Osprey.Options;

namespace Osprey.Images;

/// <summary>
/// Image-size flags as ms-swift spells them, with the MAX_PIXELS / MIN_PIXELS environment variables (ms-swift's
/// users' usual out-of-memory fix; <see cref="Limits(ImageOptions?)"/> says which wins) over the model folder's preprocessor_config.json.
/// </summary>
public sealed record ImageOptions
{
    /// <summary>--max_pixels: the most pixels an image keeps after resizing (Qwen2-VL's smart_resize).</summary>
    [Option("max_pixels", "Shrink larger images to at most N pixels before the vision tower (Qwen2-VL smart_resize); with MAX_PIXELS set too, the smaller wins; default: preprocessor_config.json.", Placeholder = "N")]
    public long? MaxPixels { get; init; }

    /// <summary>--min_pixels: the fewest pixels an image gets after resizing.</summary>
    [Option("min_pixels", "Enlarge smaller images to at least N pixels; default: MIN_PIXELS, else preprocessor_config.json.", Placeholder = "N")]
    public long? MinPixels { get; init; }

    /// <summary>
    /// The pixel limits these flags and the environment set (null: the model folder's preprocessor_config.json decides).
    /// ms-swift applies both --max_pixels (its template shrinks each image to at most that many pixels, rescale_image)
    /// and MAX_PIXELS (qwen_vl_utils' smart_resize bound, swift/llm/template/template/qwen.py), so both caps hold:
    /// here the smaller of the two is smart_resize's max_pixels (the same bound in one resize; ms-swift's two resizes
    /// can land one 28-pixel step away). ms-swift has no --min_pixels, only MIN_PIXELS: the flag, when given, wins.
    /// </summary>
    /// <exception cref="OspreyException">A flag is not positive, or an environment variable is not a positive whole number.</exception>
    public static (long? MaxPixels, long? MinPixels) Limits(ImageOptions? options) => Limits(options, Environment.GetEnvironmentVariable);

    /// <summary><see cref="Limits(ImageOptions?)"/> with the environment read through <paramref name="environment"/>.</summary>
    internal static (long? MaxPixels, long? MinPixels) Limits(ImageOptions? options, Func<string, string?> environment)
    {
        if (options?.MaxPixels is <= 0) throw new OspreyException($"--max_pixels {options.MaxPixels}: give a positive number of pixels, e.g. --max_pixels 1003520 (1280 tokens of 28x28).");
        if (options?.MinPixels is <= 0) throw new OspreyException($"--min_pixels {options.MinPixels}: give a positive number of pixels, e.g. --min_pixels 3136 (56x56).");
        var env = FromEnvironment("MAX_PIXELS", environment);
        var flag = options?.MaxPixels;
        long? max = flag is null ? env : env is null ? flag : Math.Min(flag.Value, env.Value);
        return (max, options?.MinPixels ?? FromEnvironment("MIN_PIXELS", environment));
    }

    /// <summary>The environment variable <paramref name="variable"/> as a pixel count, or null when unset.</summary>
    static long? FromEnvironment(string variable, Func<string, string?> environment)
    {
        var env = environment(variable);
        if (string.IsNullOrWhiteSpace(env)) return null;
        return long.TryParse(env.Trim(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0
            ? v
            : throw new OspreyException($"environment variable {variable}={env}: expected a positive whole number of pixels, e.g. {variable}=1003520.");
    }
}
