namespace Osprey.Hub.Download;

/// <summary>How <see cref="HfHubClient"/> reaches the hub and where it caches; <see cref="FromEnvironment"/> reads the usual variables.</summary>
public sealed class HubClientOptions
{
    /// <summary>The hub's base URL, without a trailing slash (<c>HF_ENDPOINT</c>, else https://huggingface.co).</summary>
    public string Endpoint { get; init; } = "https://huggingface.co";

    /// <summary>The access token sent as <c>Authorization: Bearer</c> (<c>HF_TOKEN</c>), or null.</summary>
    public string? Token { get; init; }

    /// <summary>The hub cache folder (<c>HF_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else ~/.cache/huggingface/hub).</summary>
    public string CacheDir { get; init; } = HubCache.HuggingFaceRoots()[0];

    /// <summary>Only the cache is used, never the network (<c>HF_HUB_OFFLINE=1</c>).</summary>
    public bool Offline { get; init; }

    /// <summary>How many times a failed request (5xx, connection error, timeout) is retried.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>The wait before the first retry; it doubles each retry up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between retries.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a request may wait for response headers, and for each chunk of a body, before it is retried.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long to wait for another process's lock on a file being downloaded.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Check the git sha1 of non-LFS files up to this size (bytes); 0 turns the check off.</summary>
    public long VerifyGitBlobsUpTo { get; init; } = 16 * 1024 * 1024;

    /// <summary>Options from <c>HF_ENDPOINT</c>, <c>HF_TOKEN</c>, <c>HF_HUB_OFFLINE</c> and the cache variables.</summary>
    public static HubClientOptions FromEnvironment()
    {
        var endpoint = Environment.GetEnvironmentVariable("HF_ENDPOINT");
        var token = Environment.GetEnvironmentVariable("HF_TOKEN") ?? Environment.GetEnvironmentVariable("HUGGING_FACE_HUB_TOKEN");
        var offline = Environment.GetEnvironmentVariable("HF_HUB_OFFLINE");
        return new HubClientOptions
        {
            Endpoint = string.IsNullOrWhiteSpace(endpoint) ? "https://huggingface.co" : endpoint.TrimEnd('/'),
            Token = string.IsNullOrWhiteSpace(token) ? null : token.Trim(),
            Offline = offline is not null && (offline.Trim() is "1" || offline.Trim().Equals("true", StringComparison.OrdinalIgnoreCase) || offline.Trim().Equals("yes", StringComparison.OrdinalIgnoreCase) || offline.Trim().Equals("on", StringComparison.OrdinalIgnoreCase)),
            CacheDir = HubCache.HuggingFaceRoots()[0],
        };
    }
}
