namespace Osprey.Server;

/// <summary>How the HTTP server listens and whom it lets in.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind (--host); 127.0.0.1 by default, 0.0.0.0 for every interface.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Port (--port); 0 picks a free one (tests).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set (--api_key), every route needs "Authorization: Bearer KEY".</summary>
    public string? ApiKey { get; init; }
    /// <summary>Serve the chat web page at / (osprey app).</summary>
    public bool WebUi { get; init; }
    /// <summary>Largest request body accepted, in bytes; a larger one is answered 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 16L << 20;
    /// <summary>Where unexpected errors (HTTP 500) are logged with their detail; null: stderr.</summary>
    public TextWriter? Log { get; init; }
}
