using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Osprey.Server;

/// <summary>Writes OpenAI-shaped error bodies.</summary>
public static class ApiErrors
{
    /// <summary>
    /// How every response is written: text as it is (no \u003C for '&lt;'), since these bodies are JSON for API
    /// clients, never inlined into HTML; quotes, backslashes and control characters are still escaped.
    /// </summary>
    public static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The <c>Retry-After</c> of a 429, in seconds.</summary>
    public const int RetryAfterSeconds = 1;

    /// <summary>OpenAI's error type for an HTTP status.</summary>
    public static string TypeFor(int status) => status switch
    {
        400 or 405 or 408 or 413 or 414 or 431 => "invalid_request_error",
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
        // A full queue drains as running requests finish, typically within a second or two of decoding: clients
        // (the OpenAI SDKs among them) wait this long before their retry instead of their own back-off guess.
        if (e.Status == 429) response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var body = Body(e);
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
    }
}
