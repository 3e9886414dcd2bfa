using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>
/// The chat web page of <c>osprey app</c>: a static page (index.html, app.js, app.css, embedded in this assembly)
/// that talks to the server's own OpenAI API (GET /v1/models, POST /v1/chat/completions with stream:true).
/// </summary>
public static class WebUi
{
    /// <summary>The page's files and their content types, served at / and /NAME.</summary>
    public static IReadOnlyDictionary<string, string> Files { get; } = new Dictionary<string, string>
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["app.js"] = "text/javascript; charset=utf-8",
        ["app.css"] = "text/css; charset=utf-8",
    };

    /// <summary>True for the paths the page's files are served at (/, /index.html, /app.js, /app.css).</summary>
    public static bool IsPagePath(PathString path) =>
        path.Value is "/" || (path.Value is { Length: > 1 } p && Files.ContainsKey(p[1..]));

    /// <summary>Maps the page and its assets at / on <paramref name="app"/>.</summary>
    public static void Map(IEndpointRouteBuilder app, ServedModel model)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(model);
        foreach (var (name, type) in Files)
        {
            var bytes = Read(name);
            var handler = (HttpContext context) =>
            {
                context.Response.Headers.CacheControl = "no-cache";
                context.Response.Headers.XContentTypeOptions = "nosniff";
                return Results.Bytes(bytes, type);
            };
            app.MapGet("/" + name, handler).ExcludeFromDescription();
            if (name == "index.html") app.MapGet("/", handler).ExcludeFromDescription();
        }
    }

    /// <summary>The bytes of one of the page's <see cref="Files"/>.</summary>
    public static byte[] Read(string name)
    {
        var resource = "Osprey.Server.WebUi." + name;
        using var stream = typeof(WebUi).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"the web page file {resource} is not embedded in {typeof(WebUi).Assembly.GetName().Name}; rebuild Osprey.Server.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
