using System.Globalization;
using System.Net.Http.Headers;
using Osprey.Hub.Download;

namespace Osprey.Hub.Upload;

/// <summary>What the two uploaders share: retries with backoff, the token only for the hub's own host, and progress lines.</summary>
internal static class UploadTransport
{
    /// <summary>A response worth retrying (5xx, 429, 408).</summary>
    internal sealed class RetryableStatus(string message) : Exception(message);

    /// <summary>
    /// Runs <paramref name="attempt"/>, retrying connection errors, timeouts and <see cref="RetryableStatus"/> with a
    /// doubling wait; after <paramref name="maxRetries"/> retries the failure becomes one sentence naming <paramref name="what"/>.
    /// </summary>
    public static async Task<T> RetryAsync<T>(string what, string endpoint, string endpointEnv, int maxRetries, TimeSpan initialBackoff, TimeSpan maxBackoff,
        Func<CancellationToken, Task<T>> attempt, CancellationToken ct)
    {
        var delay = initialBackoff;
        for (var i = 0; ; i++)
        {
            try
            {
                return await attempt(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RetryableStatus || HubTransfer.IsTransient(e, ct))
            {
                if (i >= maxRetries)
                    throw new OspreyException($"Uploading {what} to {endpoint} failed after {i + 1} attempts ({e.Message}): check the network or {endpointEnv} and run it again; files the hub already holds are not sent again.", e);
                await Task.Delay(delay, ct).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, maxBackoff.Ticks));
            }
        }
    }

    /// <summary>Adds the bearer token (and ModelScope's session cookie) only when <paramref name="url"/> is on the hub's host, never on a storage host.</summary>
    public static void Authorize(HttpRequestMessage req, Uri url, string endpoint, string? token, bool cookie)
    {
        if (token is null || !string.Equals(url.Authority, new Uri(endpoint).Authority, StringComparison.OrdinalIgnoreCase)) return;
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (cookie) req.Headers.TryAddWithoutValidation("Cookie", "m_session_id=" + token);
    }

    /// <summary>Sends and waits for the response headers, however long the body takes to go out.</summary>
    public static Task<HttpResponseMessage> SendAsync(HttpClient http, HttpRequestMessage req, CancellationToken ct) =>
        http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct);

    /// <summary>A size people read: 1.5 GB, 12.0 MB, 900 B.</summary>
    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("F1", CultureInfo.InvariantCulture) + " GB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MB",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("F1", CultureInfo.InvariantCulture) + " KB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };

    /// <summary>
    /// A progress callback for one file that writes a line to <paramref name="log"/> each time another quarter of it is
    /// sent (lines, not a redrawn bar, so logs of long runs stay readable).
    /// </summary>
    public static Action<long> Progress(TextWriter? log, string path, long size)
    {
        if (log is null || size < 64L << 20) return _ => { };
        long sent = 0;
        var nextQuarter = 1;
        var gate = new object();
        return n =>
        {
            lock (gate)
            {
                sent += n;
                while (nextQuarter < 4 && sent * 4 >= size * nextQuarter)
                {
                    log.WriteLine($"  {path}: {nextQuarter * 25}% of {Size(size)}");
                    nextQuarter++;
                }
            }
        };
    }
}
