using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Osprey.Serving;

namespace Osprey.Tests.Server;

/// <summary>
/// Test-only stand-ins for the two OpenAI routes the web page uses (GET /v1/models and streaming POST
/// /v1/chat/completions), mapped straight on the engine, and only where <c>OpenAiServer.Build</c> did not map the
/// route itself: once the real routes exist, the page tests run against them and these stay unused.
/// </summary>
internal static class StandInOpenAiRoutes
{
    /// <summary>Maps whichever of the two routes is missing; returns the routes it mapped.</summary>
    public static IReadOnlyList<string> MapMissing(WebApplication app, ServedModel model)
    {
        var existing = ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .Select(e => "/" + (e.RoutePattern.RawText ?? "").TrimStart('/')).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var mapped = new List<string>();
        if (!existing.Contains("/v1/models"))
        {
            app.MapGet("/v1/models", () => Results.Text(new JsonObject
            {
                ["object"] = "list",
                ["data"] = new JsonArray(model.ModelNames.Select(n => (JsonNode)new JsonObject { ["id"] = n, ["object"] = "model", ["owned_by"] = "osprey" }).ToArray()),
            }.ToJsonString(), "application/json"));
            mapped.Add("/v1/models");
        }
        if (!existing.Contains("/v1/chat/completions"))
        {
            app.MapPost("/v1/chat/completions", (HttpContext context) => ChatAsync(context, model));
            mapped.Add("/v1/chat/completions");
        }
        return mapped;
    }

    static async Task ChatAsync(HttpContext context, ServedModel model)
    {
        using var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
        var root = body.RootElement;
        double? Number(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        IAsyncEnumerable<EngineUpdate> updates;
        string? adapter;
        try
        {
            adapter = model.AdapterFor(root.TryGetProperty("model", out var m) ? m.GetString() : null);
            var prompt = model.EncodeChat(root.GetProperty("messages").EnumerateArray().Select(e => (object?)e.Clone()).ToList());
            var sampling = model.Sampling(maxTokens: (int?)Number("max_tokens"), temperature: Number("temperature"), topP: Number("top_p"));
            updates = model.Engine.Submit(new EngineRequest(prompt, sampling, adapter), context.RequestAborted);
        }
        catch (EngineException e)
        {
            context.Response.StatusCode = e.Kind == EngineErrorKind.UnknownModel ? 404 : 400;
            await context.Response.WriteAsync(new JsonObject
            {
                ["error"] = new JsonObject { ["message"] = e.Message, ["type"] = "invalid_request_error", ["code"] = null },
            }.ToJsonString());
            return;
        }
        context.Response.ContentType = "text/event-stream";
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var name = adapter ?? model.Name;
        async Task Send(string data)
        {
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes("data: " + data + "\n\n"), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
        JsonObject Chunk(JsonObject delta, string? finish) => new()
        {
            ["id"] = id, ["object"] = "chat.completion.chunk", ["model"] = name,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }),
        };
        await Send(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null).ToJsonString());
        await foreach (var u in updates)
        {
            if (u.TextDelta.Length > 0) await Send(Chunk(new JsonObject { ["content"] = u.TextDelta }, null).ToJsonString());
            if (u.Finish is not null) await Send(Chunk([], u.Finish).ToJsonString());
        }
        await Send("[DONE]");
    }
}
