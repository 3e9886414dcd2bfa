using Microsoft.AspNetCore.Http;

namespace Osprey.Server;

/// <summary>
/// Caps the bytes of large request bodies the server holds at once. A route reads its whole body into memory (and
/// keeps the parsed JSON for the request's lifetime), so without a cap N clients sending the largest allowed body cost
/// N times it; with it, a body over <see cref="LargeBytes"/> takes its declared length from a shared budget for as long
/// as its request runs, and one that does not fit is refused at once with 429, before any of it is read.
/// </summary>
internal sealed class LargeBodyBudget(long capacity, long maxBodyBytes)
{
    /// <summary>Bodies up to this size (1 MiB: far above any ordinary chat request) are never counted.</summary>
    public const long LargeBytes = 1L << 20;

    long _inFlight;

    /// <summary>The budget: bytes of large bodies held at once.</summary>
    public long Capacity { get; } = capacity;

    /// <summary>
    /// The bytes <paramref name="request"/> must reserve: its Content-Length when over <see cref="LargeBytes"/>, the
    /// body limit when its length is unknown (chunked), 0 when it is small or will be refused as too large (413)
    /// before it is read.
    /// </summary>
    public long Reservation(HttpRequest request)
    {
        if (request.ContentLength is { } length) return length > LargeBytes && length <= maxBodyBytes ? length : 0;
        return request.Headers.TransferEncoding.Count > 0 ? maxBodyBytes : 0;
    }

    /// <summary>Takes <paramref name="bytes"/> from the budget if they fit (one request always fits an idle server).</summary>
    public bool TryTake(long bytes)
    {
        while (true)
        {
            var now = Volatile.Read(ref _inFlight);
            if (now > 0 && now + bytes > Capacity) return false;
            if (Interlocked.CompareExchange(ref _inFlight, now + bytes, now) == now) return true;
        }
    }

    /// <summary>Gives back what <see cref="TryTake"/> took.</summary>
    public void Return(long bytes) => Interlocked.Add(ref _inFlight, -bytes);
}
