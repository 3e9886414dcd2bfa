namespace Osprey.Serving;

/// <summary>
/// What a served vision-language model takes from a request's <c>image_url</c> parts: data URLs always; http(s)
/// addresses only when <see cref="AllowRemote"/> (the server then fetches what a client names, so it is off by
/// default); and at most <see cref="MaxImages"/> images of <see cref="MaxImageBytes"/> encoded bytes each.
/// </summary>
public sealed record ImageRequestOptions
{
    /// <summary>Fetch http(s) image URLs (<c>--allow_remote_images</c>); off: only data URLs.</summary>
    public bool AllowRemote { get; init; }

    /// <summary>Images per request at most (<c>--max_images_per_request</c>).</summary>
    public int MaxImages { get; init; } = 8;

    /// <summary>Encoded bytes per image at most (<c>--max_image_bytes</c>), for data URLs and downloads alike.</summary>
    public long MaxImageBytes { get; init; } = 20L * 1024 * 1024;

    /// <summary>--max_pixels / --min_pixels over the model folder's preprocessor_config.json.</summary>
    public Osprey.Images.ImageOptions? Sizes { get; init; }

    /// <summary>Seconds a remote image may take to download.</summary>
    public int FetchTimeoutSeconds { get; init; } = 30;
}
