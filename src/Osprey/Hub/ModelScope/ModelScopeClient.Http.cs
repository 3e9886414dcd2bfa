using System.Net.Http.Headers;
using System.Text.Json;
using Osprey.Hub.Download;
using static Osprey.Hub.Download.HubTransfer;

namespace Osprey.Hub.ModelScope;

// HTTP plumbing: requests, ModelScope's error codes and bodies turned into errors that say what to do, and retries.
public sealed partial class ModelScopeClient
{
    private async Task<HttpResponseMessage> SendAsync(Uri url, long rangeFrom, CancellationToken ct)
    {
        var endpointHost = new Uri(Endpoint).Authority;
        for (var hop = 0; ; hop++)
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, url);
            // The token goes to the hub only, never to a storage host a file redirects to.
            if (Options.Token is { } token && string.Equals(url.Authority, endpointHost, StringComparison.OrdinalIgnoreCase))
            {
                req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                req.Headers.TryAddWithoutValidation("Cookie", "m_session_id=" + token);
            }
            req.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (rangeFrom > 0) req.Headers.Range = new RangeHeaderValue(rangeFrom, null);
            var resp = await HubTransfer.SendWithTimeoutAsync(_http, req, url, Options.RequestTimeout, ct).ConfigureAwait(false);
            if ((int)resp.StatusCode is >= 300 and < 400 && resp.Headers.Location is { } loc && hop < 10)
            {
                var next = loc.IsAbsoluteUri && !loc.OriginalString.StartsWith('/') ? loc : new Uri(url, loc.OriginalString);
                resp.Dispose();
                url = next;
                continue;
            }
            return resp;
        }
    }

    private void ThrowForStatus(HttpResponseMessage resp, string body, string repoId, HubRepoType type, string revision, string? path)
    {
        var status = (int)resp.StatusCode;
        if (status is >= 200 and < 300) return;
        var what = path is null ? $"ModelScope {Kind(type)} repo {repoId}" : $"file {path} of ModelScope repo {repoId}";
        if (status is 401 or 403)
            throw GatedError(repoId, type, status);
        if (status == 404)
        {
            // ModelScope often answers a JSON body with its own Code and Message; an unknown repo or revision is reported the same way.
            if (path is not null && !body.Contains("revision", StringComparison.OrdinalIgnoreCase))
                throw new OspreyException($"The file {path} of ModelScope {Kind(type)} repo {repoId} was not found on {Endpoint} (revision {revision}): check the file name and revision.");
            throw NotFoundError(repoId, type, revision);
        }
        if (status is >= 500 or 429 or 408)
            throw new TransientException($"{status} {resp.ReasonPhrase} for {what}");
        throw new OspreyException($"ModelScope answered {status} {resp.ReasonPhrase} for {what}{Message(body)}: check the repo id and MODELSCOPE_DOMAIN ({Endpoint}).");
    }

    /// <summary>ModelScope answers some errors with HTTP 200 and a JSON <c>Code</c> other than 200.</summary>
    private void ThrowForCode(JsonElement root, string repoId, HubRepoType type, string revision)
    {
        if (!root.TryGetProperty("Code", out var c)) return;
        int code;
        if (c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out var n)) code = n;
        else if (c.ValueKind == JsonValueKind.String && int.TryParse(c.GetString(), out var m)) code = m;
        else return;
        if (code == 200) return;
        if (code is 401 or 403)
            throw GatedError(repoId, type, code);
        if (code == 404) throw NotFoundError(repoId, type, revision);
        if (code >= 500 && code < 600) throw new TransientException($"code {code} for ModelScope repo {repoId}");
        throw new OspreyException($"ModelScope answered code {code} for {Kind(type)} repo {repoId} (revision {revision}){Message(root.GetRawText())}: check the repo id and revision.");
    }

    private OspreyException GatedError(string repoId, HubRepoType type, int status) =>
        new($"The ModelScope {Kind(type)} repo {repoId} is private or gated ({status} from {Endpoint}): set MODELSCOPE_API_TOKEN to an access token (from your ModelScope account settings) that can read it{(Options.Token is null ? "" : "; the token in use was refused")}.");

    private OspreyException NotFoundError(string repoId, HubRepoType type, string revision) =>
        new($"The ModelScope repo or revision was not found: {Kind(type)} repo {repoId} (revision {revision}) is not on {Endpoint}; check the id, the revision (branch or tag, default master) and the repo type, or set MODELSCOPE_API_TOKEN if it is private.");

    private static string Message(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && Str(doc.RootElement, "Message") is { Length: > 0 } m)
                return $" ({(m.Length > 200 ? m[..200] : m)})";
        }
        catch (JsonException)
        {
        }
        return "";
    }

    private static string Kind(HubRepoType type) => type == HubRepoType.Dataset ? "dataset" : "model";

    /// <summary>ModelScope could not be reached (or kept failing) after all retries.</summary>
    private sealed class HubUnreachableException(string message, Exception inner) : OspreyException(message, inner);

    private Task<T> WithRetriesAsync<T>(string what, Func<CancellationToken, Task<T>> attempt, CancellationToken ct) =>
        HubTransfer.WithRetriesAsync(what, Endpoint, "MODELSCOPE_DOMAIN", Options.MaxRetries, Options.InitialBackoff, Options.MaxBackoff,
            (message, inner) => new HubUnreachableException(message, inner), attempt, ct);
}
