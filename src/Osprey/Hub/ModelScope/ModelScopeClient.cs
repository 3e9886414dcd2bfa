using Osprey.Hub.Download;

namespace Osprey.Hub.ModelScope;

/// <summary>
/// Downloads models and datasets from ModelScope (its file-list and file APIs) into ModelScope's cache layout.
/// </summary>
public sealed class ModelScopeClient : IHubDownloader, IDisposable
{
    /// <summary>A client with <paramref name="options"/> (default: <see cref="ModelScopeClientOptions.FromEnvironment"/>).</summary>
    public ModelScopeClient(ModelScopeClientOptions? options = null) : this(options ?? ModelScopeClientOptions.FromEnvironment(), null)
    {
    }

    /// <summary>A client that sends its requests through <paramref name="handler"/> (tests).</summary>
    public ModelScopeClient(ModelScopeClientOptions options, HttpMessageHandler? handler)
    {
        Options = options;
        _ = handler;
    }

    /// <summary>The options in use.</summary>
    public ModelScopeClientOptions Options { get; }

    /// <inheritdoc />
    public Task<string> DownloadAsync(string repoId, HubDownloadOptions? options = null, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException("ModelScope downloads are being written (issue 7).");

    /// <inheritdoc />
    public void Dispose()
    {
    }
}
