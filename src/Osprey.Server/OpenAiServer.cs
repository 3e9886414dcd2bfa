using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>The OpenAI-compatible HTTP API over a <see cref="ServedModel"/> (skeleton; filled in by the server work).</summary>
public static class OpenAiServer
{
    /// <summary>Builds (does not start) a Kestrel app serving <paramref name="model"/>.</summary>
    public static WebApplication Build(ServedModel model, ServerOptions options)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{options.Host}:{options.Port}");
        var app = builder.Build();
        app.MapGet("/health", () => "ok");
        if (options.WebUi) WebUi.Map(app, model);
        return app;
    }
}
