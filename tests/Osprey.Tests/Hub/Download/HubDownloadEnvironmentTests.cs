using Osprey.Hub;
using Osprey.Hub.Download;
using Osprey.Tests.Cli.Commands;

namespace Osprey.Tests.Hub.Download;

/// <summary>The client's environment variables and <see cref="HubCache.ResolveModel"/> finding a download.</summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class HubDownloadEnvironmentTests
{
    [Fact]
    public async Task ResolveModelFindsADownloadedSnapshot()
    {
        await using var server = new FakeHubServer();
        var repo = server.Add(FakeHubServer.ModelRepo("test-org/resolved", 5000));
        using var dir = new TempDirectory();
        var cache = Path.Combine(dir.Path, "hub");
        using var endpoint = new EnvironmentVariableScope("HF_ENDPOINT", server.Url);
        using var hubCache = new EnvironmentVariableScope("HF_HUB_CACHE", cache);
        using var token = new EnvironmentVariableScope("HF_TOKEN", "hf_env_token");
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", null);

        var options = HubClientOptions.FromEnvironment();
        Assert.Equal(server.Url, options.Endpoint);
        Assert.Equal(cache, options.CacheDir);
        Assert.Equal("hf_env_token", options.Token);
        Assert.False(options.Offline);

        using var client = new HfHubClient();
        var snapshot = await client.DownloadAsync(repo.Id);
        Assert.Equal(snapshot, HubCache.ResolveModel(repo.Id));
        Assert.All(server.Requests, r => Assert.Equal("Bearer hf_env_token", r.Header("authorization")));

        using var off = new EnvironmentVariableScope("HF_HUB_OFFLINE", "1");
        Assert.True(HubClientOptions.FromEnvironment().Offline);
        var seen = server.Requests.Count;
        using var offlineClient = new HfHubClient();
        Assert.Equal(snapshot, await offlineClient.DownloadAsync(repo.Id));
        Assert.Equal(seen, server.Requests.Count);
    }
}
