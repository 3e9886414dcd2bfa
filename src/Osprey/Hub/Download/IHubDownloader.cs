namespace Osprey.Hub.Download;

/// <summary>
/// Downloads repositories from a model hub into a local folder. The Hugging Face client implements it; a
/// ModelScope client can implement it the same way so the CLI needs not know which hub it talks to.
/// </summary>
public interface IHubDownloader
{
    /// <summary>Downloads the selected files of <paramref name="repoId"/> and returns the folder holding them.</summary>
    Task<string> DownloadAsync(string repoId, HubDownloadOptions? options = null, CancellationToken cancellationToken = default);
}
