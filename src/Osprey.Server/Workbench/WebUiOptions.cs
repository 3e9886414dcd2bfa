using System.Net;
using Osprey.Options;

namespace Osprey.Server.Workbench;

/// <summary>The flags of <c>osprey web-ui</c>, declared once for the command line, <c>--help</c> and <c>--config</c>.</summary>
public sealed record WebUiOptions
{
    /// <summary>The address to listen on.</summary>
    [Option("host", "Address to listen on; any address but 127.0.0.1, ::1 or localhost needs --api_key.", Common = true)]
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The port (0: any free one).</summary>
    [Option("port", "Port to listen on (0: any free port).", Common = true)]
    public int Port { get; init; } = 7860;

    /// <summary>The page's language at first; a switch on the page changes it.</summary>
    [Option("lang", "Language of the page at first (a switch on the page changes it).", Common = true)]
    public UiLanguage Lang { get; init; } = UiLanguage.En;

    /// <summary>The key every request must carry.</summary>
    [Option("api_key", "Key every request must carry (Authorization: Bearer KEY, or typed once on the page).", Placeholder = "KEY", Secret = true)]
    public string? ApiKey { get; init; }

    /// <summary>The folders that paths given on the page must lie under; empty: the working folder and the hub caches.</summary>
    [Option("allowed_paths", "Folders that paths typed on the page must lie under (symbolic links resolved).", Placeholder = "DIR...", DefaultText = "the working folder and the hub caches")]
    public IReadOnlyList<string> AllowedPaths { get; init; } = [];

    /// <summary>True when <see cref="Host"/> is reachable only from this machine.</summary>
    public bool IsLoopback => Host is "localhost" || (IPAddress.TryParse(Host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));

    /// <summary>Checks the flags together.</summary>
    /// <exception cref="OspreyException">Listening beyond this machine without a key, or a port out of range.</exception>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new OspreyException($"--port {Port} is not a TCP port; use 0 to 65535.");
        if (!IsLoopback && string.IsNullOrEmpty(ApiKey))
            throw new OspreyException($"--host {Host} lets other machines start training jobs and read files on this one, so it needs --api_key KEY too (or keep the default --host 127.0.0.1).");
    }
}
