namespace Osprey.Hub.ModelScope;

/// <summary>How <see cref="ModelScopeClient"/> reaches ModelScope and where it caches; <see cref="FromEnvironment"/> reads the usual variables.</summary>
public sealed class ModelScopeClientOptions
{
    /// <summary>The hub's base URL without a trailing slash (<c>MODELSCOPE_DOMAIN</c>, else https://www.modelscope.cn).</summary>
    public string Endpoint { get; init; } = "https://www.modelscope.cn";

    /// <summary>The access token (<c>MODELSCOPE_API_TOKEN</c>), or null.</summary>
    public string? Token { get; init; }

    /// <summary>The cache root (<c>MODELSCOPE_CACHE</c>, else ~/.cache/modelscope/hub).</summary>
    public string CacheDir { get; init; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "modelscope", "hub");

    /// <summary>Only the cache is used, never the network.</summary>
    public bool Offline { get; init; }

    /// <summary>How many times a failed request (5xx, connection error, timeout) is retried.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>The wait before the first retry; it doubles each retry up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between retries.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a request may wait for headers, and for each body chunk, before it is retried.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long to wait for another process's lock on a file being downloaded.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How many entries one page of a dataset's file tree asks for (the tree API is paged).</summary>
    public int DatasetPageSize { get; init; } = 100;

    /// <summary>Options from <c>MODELSCOPE_DOMAIN</c>, <c>MODELSCOPE_API_TOKEN</c>, <c>MODELSCOPE_CACHE</c> and <c>HF_HUB_OFFLINE</c>/<c>MODELSCOPE_OFFLINE</c>.</summary>
    public static ModelScopeClientOptions FromEnvironment()
    {
        var domain = Environment.GetEnvironmentVariable("MODELSCOPE_DOMAIN");
        var token = Environment.GetEnvironmentVariable("MODELSCOPE_API_TOKEN");
        var cache = Environment.GetEnvironmentVariable("MODELSCOPE_CACHE");
        var offline = Environment.GetEnvironmentVariable("MODELSCOPE_OFFLINE") ?? Environment.GetEnvironmentVariable("HF_HUB_OFFLINE");
        var endpoint = string.IsNullOrWhiteSpace(domain) ? "https://www.modelscope.cn" : domain.Trim().TrimEnd('/');
        if (!endpoint.Contains("://", StringComparison.Ordinal)) endpoint = "https://" + endpoint; // MODELSCOPE_DOMAIN is often a bare host
        return new ModelScopeClientOptions
        {
            Endpoint = endpoint,
            Token = string.IsNullOrWhiteSpace(token) ? null : token.Trim(),
            CacheDir = string.IsNullOrWhiteSpace(cache) ? new ModelScopeClientOptions().CacheDir : cache,
            Offline = offline?.Trim() is "1" or "true" or "TRUE" or "yes" or "on",
        };
    }
}
