using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Osprey.Server;

/// <summary>An error answered to the client as OpenAI's <c>{"error": {...}}</c> with an HTTP status.</summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null, string? type = null) : Exception(message)
{
    /// <summary>The HTTP status.</summary>
    public int Status { get; } = status;
    /// <summary>The request field at fault, if one is.</summary>
    public string? Param { get; } = param;
    /// <summary>A machine-readable code (such as <c>context_length_exceeded</c>), if any.</summary>
    public string? Code { get; } = code;
    /// <summary>OpenAI's error type; derived from the status when not given.</summary>
    public string Type { get; } = type ?? ApiErrors.TypeFor(status);

    /// <summary>A 400 naming <paramref name="param"/>.</summary>
    public static ApiException Bad(string message, string? param = null, string? code = null) => new(400, message, param, code);
}

/// <summary>Writes OpenAI-shaped error bodies.</summary>
public static class ApiErrors
{
    /// <summary>
    /// How every response is written: text as it is (no \u003C for '&lt;'), since these bodies are JSON for API
    /// clients, never inlined into HTML; quotes, backslashes and control characters are still escaped.
    /// </summary>
    public static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>OpenAI's error type for an HTTP status.</summary>
    public static string TypeFor(int status) => status switch
    {
        400 or 413 or 405 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 => "service_unavailable_error",
        _ => "server_error",
    };

    /// <summary>The error object <c>{"error":{message,type,param,code}}</c> written with <paramref name="w"/>.</summary>
    public static void WriteBody(Utf8JsonWriter w, string message, string type, string? param, string? code)
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", type);
        if (param is null) w.WriteNull("param"); else w.WriteString("param", param);
        if (code is null) w.WriteNull("code"); else w.WriteString("code", code);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>The error as JSON bytes.</summary>
    public static byte[] Body(ApiException e)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, ApiErrors.JsonOptions)) WriteBody(w, e.Message, e.Type, e.Param, e.Code);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Answers the request with <paramref name="e"/> (when the response has not started).</summary>
    public static async Task WriteAsync(HttpContext context, ApiException e)
    {
        var response = context.Response;
        if (response.HasStarted) return;
        response.Clear();
        response.StatusCode = e.Status;
        response.ContentType = "application/json";
        if (e.Status == 401) response.Headers.WWWAuthenticate = "Bearer";
        await response.Body.WriteAsync(Body(e), context.RequestAborted).ConfigureAwait(false);
    }
}
