using Osprey.Images;
using Osprey.Models;

namespace Osprey.Serving;

/// <summary>
/// The image intake of a served vision-language model (Qwen2-VL, Qwen2.5-VL, LLaVA, LLaVA-NeXT): reads a request's image
/// URLs (data URLs, or http(s) when <see cref="ImageRequestOptions.AllowRemote"/>) within the size limits, and turns the
/// bytes into what the vision tower takes with the model folder's image processor (<see cref="VisionInput"/>). The engine then runs the request with the text ones.
/// </summary>
public sealed class ServedVision
{
    static readonly HttpClient Web = new() { Timeout = Timeout.InfiniteTimeSpan };

    ServedVision(VisionInput input, ImageRequestOptions limits)
    {
        Input = input;
        Limits = limits;
    }

    /// <summary>The request limits.</summary>
    public ImageRequestOptions Limits { get; }

    /// <summary>The model folder's image side: its image processor, token counts and prompt tokens.</summary>
    public VisionInput Input { get; }

    /// <summary>The intake for the model in <paramref name="folder"/> (its preprocessor_config.json) with <paramref name="limits"/>.</summary>
    public static ServedVision Create(string folder, ImageRequestOptions limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (limits.MaxImages < 1) throw new OspreyException($"--max_images_per_request must be at least 1 (got {limits.MaxImages}).");
        if (limits.MaxImageBytes < 1) throw new OspreyException($"--max_image_bytes must be positive (got {limits.MaxImageBytes}).");
        var input = VisionInput.Read(folder, limits.Sizes) ?? throw new OspreyException($"{folder} is not a vision-language model; it takes no images.");
        return new ServedVision(input, limits);
    }

    /// <summary>The encoded bytes of an image URL; <paramref name="where"/> names it (messages[0].content[1]) in errors.</summary>
    public async Task<byte[]> ReadAsync(string url, string where, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(url);
        byte[] data;
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            // base64 is 4/3 of the bytes: refuse an oversized one before decoding it.
            if ((url.Length - url.IndexOf(',', StringComparison.Ordinal)) / 4 * 3 > Limits.MaxImageBytes + 3)
                throw new OspreyException($"{where}: the image is larger than this server's limit of {Limits.MaxImageBytes} bytes; send a smaller one.");
            data = ImageSource.Read(url, null, where);
        }
        else if (url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            if (!Limits.AllowRemote)
                throw new OspreyException($"{where}: this server takes images as data URLs (data:image/png;base64,...); http(s) image URLs need the server started with --allow_remote_images.");
            data = await FetchAsync(url, where, cancel).ConfigureAwait(false);
        }
        else
        {
            // A path would let a client read the server's files.
            throw new OspreyException($"{where}: an image_url must be a data URL (data:image/png;base64,...) or, with --allow_remote_images, an http(s) URL.");
        }
        if (data.LongLength > Limits.MaxImageBytes)
            throw new OspreyException($"{where}: the image is {data.LongLength} bytes, more than this server's limit of {Limits.MaxImageBytes}; send a smaller one.");
        return data;
    }

    async Task<byte[]> FetchAsync(string url, string where, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(TimeSpan.FromSeconds(Limits.FetchTimeoutSeconds));
        try
        {
            using var response = await Web.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
                throw new OspreyException($"{where}: fetching the image gave HTTP {(int)response.StatusCode}; check the URL or send the image as a data URL.");
            if (response.Content.Headers.ContentLength > Limits.MaxImageBytes)
                throw new OspreyException($"{where}: the image is {response.Content.Headers.ContentLength} bytes, more than this server's limit of {Limits.MaxImageBytes}; send a smaller one.");
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int n;
            while ((n = await stream.ReadAsync(chunk, timeout.Token).ConfigureAwait(false)) > 0)
            {
                buffer.Write(chunk, 0, n);
                // The length header may be absent or wrong: count what actually arrives.
                if (buffer.Length > Limits.MaxImageBytes)
                    throw new OspreyException($"{where}: the image is more than this server's limit of {Limits.MaxImageBytes} bytes; send a smaller one.");
            }
            return buffer.ToArray();
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new OspreyException($"{where}: the image did not download within {Limits.FetchTimeoutSeconds} s; send it as a data URL.");
        }
        catch (HttpRequestException e)
        {
            throw new OspreyException($"{where}: the image could not be fetched ({e.Message}); check the URL or send it as a data URL.");
        }
    }

    /// <summary>An image decoded and processed for the vision tower; <paramref name="where"/> names it in errors.</summary>
    public ProcessedImage Prepare(byte[] data, string where) => Input.Process(ImageDecoder.Decode(data, where));
}
