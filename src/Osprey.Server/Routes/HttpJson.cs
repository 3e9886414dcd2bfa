using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Osprey.Server;

/// <summary>Reads request bodies and writes JSON responses and server-sent events, the same way on every route.</summary>
internal static class HttpJson
{
    static readonly byte[] s_data = "data: "u8.ToArray();
    static readonly byte[] s_end = "\n\n"u8.ToArray();
    static readonly byte[] s_done = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>Property names come from each record's [JsonPropertyName]; escaping from <see cref="ApiErrors.JsonOptions"/>.</summary>
    static readonly JsonSerializerOptions s_options = new();

    /// <summary>
    /// A JSON null for an <c>object?</c> field whose C# null means "leave the field out" (such as a chunk's
    /// <c>usage</c>, which is null on every chunk only when the client asked for usage).
    /// </summary>
    public static readonly JsonElement Null = JsonDocument.Parse("null").RootElement.Clone();

    /// <summary>The request body as JSON; a body that does not parse is a 400.</summary>
    public static async Task<JsonElement> ReadBody(HttpContext context)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted).ConfigureAwait(false);
            CheckText(doc.RootElement, "");
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw ApiException.Bad($"The request body is not valid JSON: {e.Message}");
        }
    }

    /// <summary>
    /// The JSON parser leaves string contents unchecked until they are read, when invalid UTF-8 or a lone surrogate
    /// escape ("\ud800") throws: every name and string is read once here so such text is a 400 naming its field.
    /// </summary>
    static void CheckText(JsonElement e, string path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                if (!Readable(() => e.GetString()))
                    throw ApiException.Bad($"'{Field(path)}' is not valid text (invalid UTF-8 or a lone surrogate such as \\ud800); send well-formed UTF-8.", Field(path));
                break;
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    if (!Readable(() => p.Name))
                        throw ApiException.Bad($"A field name in '{Field(path)}' is not valid text (invalid UTF-8 or a lone surrogate); send well-formed UTF-8.", Field(path));
                    CheckText(p.Value, path.Length == 0 ? p.Name : $"{path}.{p.Name}");
                }
                break;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in e.EnumerateArray()) CheckText(item, $"{path}[{i++}]");
                break;
        }

        static string Field(string path) => path.Length == 0 ? "body" : path;

        static bool Readable(Func<string?> read)
        {
            try
            {
                read();
                return true;
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }
    }

    /// <summary>A token cancelled when the client goes away or the server stops.</summary>
    public static CancellationToken Token(HttpContext context, CancellationToken stopping, out CancellationTokenSource linked)
    {
        linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        return linked.Token;
    }

    /// <summary>Answers with <paramref name="value"/> as application/json.</summary>
    public static async Task WriteJson<T>(HttpContext context, T value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, ApiErrors.JsonOptions)) JsonSerializer.Serialize(w, value, s_options);
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Starts a text/event-stream response that proxies must not buffer.</summary>
    public static void StartSse(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <summary>Sends one event, <c>data: {json}</c>, and flushes it.</summary>
    /// <remarks>
    /// The write itself is cancelled only by the client leaving: cancelling a pending Kestrel write (as a server stop
    /// would, through <paramref name="token"/>) aborts the connection with a reset, and the client would never see the
    /// error event that ends a stream cut by shutdown. A stop is honoured between chunks instead.
    /// </remarks>
    public static async Task WriteChunk<T>(HttpContext context, T value, CancellationToken token)
    {
        await WriteChunk(context, w => JsonSerializer.Serialize(w, value, s_options), context.RequestAborted).ConfigureAwait(false);
        token.ThrowIfCancellationRequested();
    }

    static async Task WriteChunk(HttpContext context, Action<Utf8JsonWriter> write, CancellationToken token)
    {
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write(s_data);
        using (var w = new Utf8JsonWriter(buffer, ApiErrors.JsonOptions)) write(w);
        buffer.Write(s_end);
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, token).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(token).ConfigureAwait(false);
    }

    /// <summary>Ends the stream with <c>data: [DONE]</c>.</summary>
    public static async Task WriteDone(HttpContext context, CancellationToken token)
    {
        token.ThrowIfCancellationRequested(); // a stopped server ends with an error event, not [DONE]
        await context.Response.Body.WriteAsync(s_done, context.RequestAborted).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>An error mid-stream: an error response while nothing was sent yet, an error event after.</summary>
    public static Task WriteSseError(HttpContext context, ApiException e, CancellationToken token)
    {
        if (!context.Response.HasStarted)
        {
            return ApiErrors.WriteAsync(context, e);
        }
        return WriteChunk(context, w => ApiErrors.WriteBody(w, e.Message, e.Type, e.Param, e.Code), token);
    }
}
