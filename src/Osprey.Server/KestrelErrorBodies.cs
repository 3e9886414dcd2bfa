using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;

namespace Osprey.Server;

/// <summary>
/// Gives OpenAI-shaped JSON bodies to the errors Kestrel answers on its own, before any middleware runs: a NUL or
/// other control character in the path (400), a request line over its limit (414), headers over its limit (431), a
/// request that does not arrive in time (408). Kestrel offers no hook for these: it parses the request line and
/// headers in Http1Connection.TryParseRequest, and on a BadHttpRequestException HttpProtocol.ProcessRequestsAsync calls
/// TryProduceInvalidRequestResponse, which writes the status with <c>Content-Length: 0</c> and closes the connection
/// (dotnet/aspnetcore src/Servers/Kestrel/Core/src/Internal/Http/HttpProtocol.cs). What it does let us do is wrap
/// each connection's transport (a connection middleware, <c>ListenOptions.Use</c>): the output of a connection passes
/// through untouched while the app is answering one of its requests, and otherwise (only Kestrel writes then) is held
/// until flushed and, if it is an error head without a body, given one.
/// </summary>
internal sealed class KestrelErrorBodies
{
    readonly ConcurrentDictionary<string, Connection> _connections = new();
    readonly int _maxRequestLineBytes;

    public KestrelErrorBodies(int maxRequestLineBytes) => _maxRequestLineBytes = maxRequestLineBytes;

    /// <summary>The connection middleware: wraps the transport's output for the connection's lifetime.</summary>
    public ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        var state = new Connection();
        _connections[connection.ConnectionId] = state;
        var transport = connection.Transport;
        connection.Transport = new Duplex(transport.Input, new Writer(transport.Output, state, this));
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            connection.Transport = transport;
            _connections.TryRemove(connection.ConnectionId, out _);
        }
    };

    /// <summary>
    /// Marks the request's connection as answered by the app until the response is complete (OnCompleted runs after
    /// Kestrel has written the response's last bytes), so nothing the app writes is ever touched.
    /// </summary>
    public void Enter(HttpContext context)
    {
        if (!_connections.TryGetValue(context.Connection.Id, out var state)) return;
        Volatile.Write(ref state.InApp, true);
        context.Response.OnCompleted(() =>
        {
            Volatile.Write(ref state.InApp, false);
            return Task.CompletedTask;
        });
    }

    /// <summary>What the body says for a status Kestrel answered on its own.</summary>
    string MessageFor(int status) => status switch
    {
        400 => "The request line or headers are malformed (for example a NUL or another control character in the path, a header line without a colon, or both Content-Length and Transfer-Encoding); send a well-formed HTTP/1.1 request.",
        408 => "The request's headers did not arrive in time; send the whole request head at once.",
        414 => $"The request line is longer than this server accepts (at most {_maxRequestLineBytes} bytes); send long input in the JSON body, not in the URL.",
        431 => $"The request's headers are larger than this server accepts (at most {OpenAiServer.MaxHeaderBytes} bytes and {OpenAiServer.MaxHeaderCount} headers); send fewer or smaller headers.",
        _ => $"The web server refused the request with HTTP {status}; send a well-formed HTTP/1.1 request.",
    };

    /// <summary>
    /// <paramref name="head"/> (one whole response Kestrel wrote on its own) with a JSON error body, if it is an
    /// HTTP/1.1 error status with <c>Content-Length: 0</c> and nothing after its head; otherwise null.
    /// </summary>
    internal byte[]? WithBody(ReadOnlySpan<byte> head)
    {
        if (head.Length < 16 || !head.StartsWith("HTTP/1.1 "u8)) return null;
        var end = head.IndexOf("\r\n\r\n"u8);
        if (end < 0 || end + 4 != head.Length) return null;
        if (!int.TryParse(Encoding.ASCII.GetString(head.Slice(9, 3)), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var status) || status < 400) return null;
        var lines = Encoding.ASCII.GetString(head[..end]).Split("\r\n");
        var length = Array.FindIndex(lines, l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        if (length < 0 || lines[length]["Content-Length:".Length..].Trim() != "0") return null;
        var body = ApiErrors.Body(new ApiException(status, MessageFor(status)));
        lines[length] = $"Content-Length: {body.Length}";
        var text = string.Join("\r\n", lines.Take(length + 1).Append("Content-Type: application/json").Concat(lines.Skip(length + 1))) + "\r\n\r\n";
        return [.. Encoding.ASCII.GetBytes(text), .. body];
    }

    /// <summary>One connection's state: whether the app is answering one of its requests now.</summary>
    sealed class Connection
    {
        public bool InApp;
    }

    sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }

    /// <summary>
    /// Passes writes through while the app answers; otherwise holds them until the flush, when they are one whole
    /// response of Kestrel's own (it writes nothing else between requests), and gives an empty error a body.
    /// </summary>
    sealed class Writer(PipeWriter inner, Connection state, KestrelErrorBodies owner) : PipeWriter
    {
        ArrayBufferWriter<byte>? _held;
        bool _holding;

        bool Hold()
        {
            _holding = !Volatile.Read(ref state.InApp);
            if (!_holding) Release();
            return _holding;
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => Hold() ? (_held ??= new()).GetMemory(sizeHint) : inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => Hold() ? (_held ??= new()).GetSpan(sizeHint) : inner.GetSpan(sizeHint);

        public override void Advance(int bytes)
        {
            if (_holding) _held!.Advance(bytes);
            else inner.Advance(bytes);
        }

        /// <summary>Writes what is held to the transport (with a body if it is an empty error).</summary>
        void Release()
        {
            if (_held is not { WrittenCount: > 0 }) return;
            var written = _held.WrittenSpan;
            inner.Write(owner.WithBody(written) ?? written);
            _held.ResetWrittenCount();
        }

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            Release();
            return inner.FlushAsync(cancellationToken);
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            Release();
            inner.Complete(exception);
        }

        public override ValueTask CompleteAsync(Exception? exception = null)
        {
            Release();
            return inner.CompleteAsync(exception);
        }

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes + (_held?.WrittenCount ?? 0);
    }
}
