using System.Net.Http.Headers;
using static Osprey.Hub.Download.HubTransfer;

namespace Osprey.Hub.Download;

// HTTP plumbing: redirects followed by hand (a HEAD stops at the one carrying the hub's metadata; the token never goes to a CDN), status errors and retries.
public sealed partial class HfHubClient
{
    private enum RedirectMode { All, RelativeWithoutMetadata }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, long rangeFrom, RedirectMode mode, CancellationToken ct)
    {
        var endpointHost = new Uri(Endpoint).Authority;
        for (var hop = 0; ; hop++)
        {
            using var req = new HttpRequestMessage(method, url);
            // The token goes to the hub only, never to a CDN on another host.
            if (_options.Token is { } token && string.Equals(url.Authority, endpointHost, StringComparison.OrdinalIgnoreCase))
                req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            req.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (rangeFrom > 0) req.Headers.Range = new RangeHeaderValue(rangeFrom, null);
            var resp = await HubTransfer.SendWithTimeoutAsync(_http, req, url, _options.RequestTimeout, ct).ConfigureAwait(false);
            var status = (int)resp.StatusCode;
            if (status is >= 300 and < 400 && resp.Headers.Location is { } loc && hop < 10)
            {
                var relative = !loc.IsAbsoluteUri || loc.OriginalString.StartsWith('/');
                var hasMetadata = resp.Headers.Contains("X-Repo-Commit") || resp.Headers.Contains("X-Linked-Etag");
                if (mode == RedirectMode.All || (relative && !hasMetadata))
                {
                    var next = loc.IsAbsoluteUri && !loc.OriginalString.StartsWith('/') ? loc : new Uri(url, loc.OriginalString);
                    resp.Dispose();
                    url = next;
                    continue;
                }
            }
            return resp;
        }
    }

    private void ThrowForStatus(HttpResponseMessage resp, string repoId, string? revision, string? path)
    {
        var status = (int)resp.StatusCode;
        if (status is >= 200 and < 400) return;
        var code = Header(resp, "X-Error-Code");
        var what = path is null ? $"repo {repoId}" : $"file {path} of repo {repoId}";
        if (status is 401 or 403 || code == "GatedRepo")
            throw new OspreyException($"The repo {repoId} is gated or private ({status} from {Endpoint}): set HF_TOKEN to a token with access{(status == 403 ? " and accept the repo's terms on its page" : "")}.");
        if (status == 404)
        {
            if (code == "EntryNotFound" || (code is null && path is not null))
                throw new OspreyException($"The file {path} of repo {repoId} was not found on {Endpoint}: check the file name and revision.");
            if (code == "RevisionNotFound")
                throw new OspreyException($"The revision {revision} of repo {repoId} was not found on {Endpoint}: check the branch, tag or commit.");
            throw new OspreyException($"The repo or revision was not found: {repoId} (revision {revision ?? "?"}) is not on {Endpoint}; check the id, the revision and the repo type, or set HF_TOKEN if it is private.");
        }
        if (status is >= 500 or 429 or 408)
            throw new TransientException($"{status} {resp.ReasonPhrase} for {what}");
        throw new OspreyException($"The hub answered {status} {resp.ReasonPhrase} for {what}: check the repo id and HF_ENDPOINT ({Endpoint}).");
    }

    private static async Task<string> ReadBodyAsync(HttpResponseMessage resp, CancellationToken ct) =>
        await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);

    /// <summary>The hub could not be reached (or kept failing) after all retries.</summary>
    private sealed class HubUnreachableException(string message, Exception inner) : OspreyException(message, inner);

    private Task<T> WithRetriesAsync<T>(string what, Func<CancellationToken, Task<T>> attempt, CancellationToken ct) =>
        HubTransfer.WithRetriesAsync(what, Endpoint, "HF_ENDPOINT", _options.MaxRetries, _options.InitialBackoff, _options.MaxBackoff,
            (message, inner) => new HubUnreachableException(message, inner), attempt, ct);
}
