using Osprey.Hub.ModelScope;

namespace Osprey.Hub.Download;

/// <summary>
/// Which hub a command talks to. ms-swift's rule: ModelScope unless <c>--use_hf true</c> or the environment variable
/// <c>USE_HF=1</c>; each client reads its endpoint, token, cache and offline settings from the environment.
/// </summary>
public static class HubDownloaders
{
    /// <summary>True when <c>USE_HF</c> is 1/true/yes/on.</summary>
    public static bool UseHfFromEnvironment() =>
        Environment.GetEnvironmentVariable("USE_HF")?.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on";

    /// <summary>
    /// A client for the chosen hub: Hugging Face when <paramref name="useHf"/> (null: <c>USE_HF</c>), else ModelScope.
    /// <paramref name="offline"/> true forces cache-only operation; <paramref name="token"/> (<c>--hub_token</c>) replaces the
    /// environment's token.
    /// </summary>
    public static IHubDownloader Create(bool? useHf, bool offline = false, string? token = null)
    {
        token = string.IsNullOrWhiteSpace(token) ? null : token.Trim();
        if (useHf ?? UseHfFromEnvironment())
        {
            var o = HubClientOptions.FromEnvironment();
            return new HfHubClient(offline || token is not null ? new HubClientOptions { Endpoint = o.Endpoint, Token = token ?? o.Token, CacheDir = o.CacheDir, Offline = offline || o.Offline } : o);
        }
        var m = ModelScopeClientOptions.FromEnvironment();
        return new ModelScopeClient(offline || token is not null ? new ModelScopeClientOptions { Endpoint = m.Endpoint, Token = token ?? m.Token, CacheDir = m.CacheDir, Offline = offline || m.Offline } : m);
    }
}
