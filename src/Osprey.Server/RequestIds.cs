using Microsoft.AspNetCore.Http;

namespace Osprey.Server;

/// <summary>
/// The <c>x-request-id</c> header every response carries (as OpenAI's API does), so a client can quote it in a report
/// and find it in the server's log. A response whose body has an id (<c>chatcmpl-…</c>, <c>cmpl-…</c>) carries that
/// same id; every other response a <c>req_…</c> id of its own.
/// </summary>
internal static class RequestIds
{
    /// <summary>The response header's name.</summary>
    public const string Header = "x-request-id";

    static readonly object s_key = new();

    /// <summary>
    /// Gives the request its id and writes it when the response starts: set then (not now) because an error answer
    /// clears the headers a route had set.
    /// </summary>
    public static void Start(HttpContext context)
    {
        context.Items[s_key] = "req_" + Guid.NewGuid().ToString("N");
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[Header] = Of(context);
            return Task.CompletedTask;
        });
    }

    /// <summary>The request's id: the body's id once a route has made one with <see cref="New"/>.</summary>
    public static string Of(HttpContext context) => context.Items[s_key] as string ?? "req_unknown";

    /// <summary>A body id such as <c>chatcmpl-…</c>, which from now on is also the request's id.</summary>
    public static string New(HttpContext context, string prefix)
    {
        var id = prefix + Guid.NewGuid().ToString("N");
        context.Items[s_key] = id;
        return id;
    }
}
