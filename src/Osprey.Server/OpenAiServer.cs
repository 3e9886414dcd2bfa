using Osprey.Inference;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>
/// The OpenAI-compatible HTTP API over a <see cref="ServedModel"/>: GET /health, GET /v1/models,
/// POST /v1/chat/completions, POST /v1/completions (streaming as server-sent events) and POST /v1/embeddings. Every error is answered
/// as OpenAI's <c>{"error": {...}}</c> JSON; with an API key every route needs <c>Authorization: Bearer KEY</c>.
/// </summary>
public static class OpenAiServer
{
    /// <summary>How long a stream cut by shutdown may take to send its closing error event.</summary>
    static readonly TimeSpan ShutdownDrain = TimeSpan.FromSeconds(2);

    /// <summary>The request headers this server accepts (Kestrel's own defaults: 32 KB, 100 headers).</summary>
    internal const int MaxHeaderBytes = 32 * 1024, MaxHeaderCount = 100;

    /// <summary>
    /// What Kestrel itself lets through (it answers beyond these with an empty 431 before any middleware runs, which
    /// is not customisable); between the two limits <see cref="Guard"/> answers 431 with an OpenAI error body.
    /// </summary>
    const int KestrelHeaderBytes = 256 * 1024, KestrelHeaderCount = 1000;

    /// <summary>Builds (does not start) a Kestrel app serving <paramref name="model"/>.</summary>
    public static WebApplication Build(ServedModel model, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{FormatHost(options.Host)}:{options.Port}");
        // Errors Kestrel answers before any middleware (NUL in the path, request line or headers too long) get an
        // OpenAI body from a connection middleware; see KestrelErrorBodies.
        var errorBodies = new KestrelErrorBodies(new Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerLimits().MaxRequestLineSize);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.AddServerHeader = false;
            k.Limits.MaxRequestHeadersTotalSize = KestrelHeaderBytes;
            k.Limits.MaxRequestHeaderCount = KestrelHeaderCount;
            k.ConfigureEndpointDefaults(listen => listen.Use(errorBodies.Wrap));
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(10));
        var app = builder.Build();
        var log = options.Log ?? Console.Error;
        var stopping = app.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        // Large bodies share a budget of four of the largest allowed (64 MB by default): see LargeBodyBudget.
        var bodies = new LargeBodyBudget(4 * options.MaxRequestBodyBytes, options.MaxRequestBodyBytes);
        app.Use((context, next) =>
        {
            errorBodies.Enter(context);
            return Guard(context, next, options, log, bodies);
        });

        app.MapGet("/health", () => Results.Text("ok"));
        var models = new ModelsRoute(model);
        app.MapGet("/v1/models", models.Handle);
        // A catch-all: a served name such as "Qwen/Qwen2.5-0.5B" holds a slash.
        app.MapGet("/v1/models/{**id}", models.HandleOne);
        app.MapPost("/v1/chat/completions", new ChatCompletionsRoute(model, stopping).Handle);
        app.MapPost("/v1/completions", new CompletionsRoute(model, stopping).Handle);
        app.MapPost("/v1/embeddings", new EmbeddingsRoute(model, stopping).Handle);
        if (options.WebUi) WebUi.Map(app, model);
        return app;
    }

    static string FormatHost(string host) => host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') ? $"[{host}]" : host;

    /// <summary>Header limits, authentication and the large-body budget, then the route.</summary>
    static async Task Guard(HttpContext context, RequestDelegate next, ServerOptions options, TextWriter log, LargeBodyBudget bodies)
    {
        RequestIds.Start(context);
        if (HeadersTooLarge(context.Request.Headers) is { } tooLarge)
        {
            await ApiErrors.WriteAsync(context, new ApiException(431, tooLarge)).ConfigureAwait(false);
            return;
        }
        // The web page's own files hold no data, and a browser opening it cannot send the header: they stay
        // public, and the page asks for the key for its API calls.
        var pageFile = options.WebUi && HttpMethods.IsGet(context.Request.Method) && WebUi.IsPagePath(context.Request.Path);
        if (options.ApiKey is { } key && !pageFile && !Authorized(context.Request.Headers.Authorization.ToString(), key))
        {
            await ApiErrors.WriteAsync(context, new ApiException(401, "Missing or wrong API key; send \"Authorization: Bearer <key>\" with the key the server was started with.", null, "invalid_api_key")).ConfigureAwait(false);
            return;
        }
        var reserved = bodies.Reservation(context.Request);
        if (reserved > 0 && !bodies.TryTake(reserved))
        {
            await ApiErrors.WriteAsync(context, new ApiException(429, $"Too many large requests at once: this server holds at most {bodies.Capacity} bytes of request bodies over {LargeBodyBudget.LargeBytes} bytes at a time, and this one ({reserved} bytes) does not fit now; send it again in a moment.", null, "too_many_large_requests")).ConfigureAwait(false);
            return;
        }
        try
        {
            await Answer(context, next, options, log).ConfigureAwait(false);
        }
        finally
        {
            if (reserved > 0) bodies.Return(reserved);
        }
    }

    /// <summary>The route; any failure becomes an OpenAI error body.</summary>
    static async Task Answer(HttpContext context, RequestDelegate next, ServerOptions options, TextWriter log)
    {
        try
        {
            await next(context).ConfigureAwait(false);
            if (!context.Response.HasStarted && context.Response.StatusCode is 404 or 405 && context.Response.ContentLength is null)
            {
                var status = context.Response.StatusCode;
                await ApiErrors.WriteAsync(context, status == 404
                    ? new ApiException(404, $"No route {context.Request.Method} {context.Request.Path}; this server has GET /health, GET /v1/models, GET /v1/models/{{id}}, POST /v1/chat/completions, POST /v1/completions and POST /v1/embeddings.")
                    : new ApiException(405, $"{context.Request.Method} is not allowed on {context.Request.Path}.")).ConfigureAwait(false);
            }
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its requests were cancelled with the token. Nothing to answer.
        }
        catch (ApiException e)
        {
            await ApiErrors.WriteAsync(context, e).ConfigureAwait(false);
        }
        catch (EngineException e)
        {
            var path = context.Request.Path.Value ?? "";
            var field = path.EndsWith("/chat/completions", StringComparison.Ordinal) ? "messages" : path.EndsWith("/embeddings", StringComparison.Ordinal) ? "input" : "prompt";
            await ApiErrors.WriteAsync(context, EngineErrors.ToApi(e, field)).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e)
        {
            var message = e.StatusCode == 413 ? $"The request body is larger than this server's limit of {options.MaxRequestBodyBytes} bytes." : $"Bad request: {e.Message}";
            await ApiErrors.WriteAsync(context, new ApiException(e.StatusCode, message)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested)
        {
            var stopped = new ApiException(503, "The server is shutting down; the reply was cut short, send the request again when it is back.", null, "unavailable");
            if (context.Response.HasStarted && context.Response.ContentType == "text/event-stream")
            {
                // A stream already under way ends with an error event (and no [DONE]), so the client can tell a cut
                // reply from a finished one; a client that does not read it within the drain time is left behind.
                using var drain = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
                drain.CancelAfter(ShutdownDrain);
                try
                {
                    await HttpJson.WriteSseError(context, stopped, drain.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                    // The client is gone or too slow; the stream ends without the event.
                }
                return;
            }
            await ApiErrors.WriteAsync(context, stopped).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            lock (log) log.WriteLine($"osprey: internal error on {context.Request.Method} {context.Request.Path}: {e}");
            await ApiErrors.WriteAsync(context, new ApiException(500, "The server had an internal error while processing the request.")).ConfigureAwait(false);
        }
    }

    /// <summary>Why the request's headers are over this server's limits (counted as Kestrel does), or null.</summary>
    static string? HeadersTooLarge(IHeaderDictionary headers)
    {
        var count = 0;
        long bytes = 0;
        foreach (var (name, values) in headers)
            foreach (var value in values)
            {
                count++;
                bytes += name.Length + (value?.Length ?? 0) + 4; // ": " and CRLF
            }
        if (count > MaxHeaderCount) return $"The request has {count} headers; this server accepts at most {MaxHeaderCount}.";
        if (bytes > MaxHeaderBytes) return $"The request's headers are {bytes} bytes; this server accepts at most {MaxHeaderBytes} bytes of headers.";
        return null;
    }

    static bool Authorized(string header, string key)
    {
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return false;
        var given = Encoding.UTF8.GetBytes(header[prefix.Length..].Trim());
        return CryptographicOperations.FixedTimeEquals(given, Encoding.UTF8.GetBytes(key));
    }
}
