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
}
