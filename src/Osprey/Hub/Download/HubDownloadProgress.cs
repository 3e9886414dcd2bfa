namespace Osprey.Hub.Download;

/// <summary>Progress of a download, reported after each chunk written and when a file completes.</summary>
/// <param name="File">The repository path of the file that advanced.</param>
/// <param name="FileBytes">Bytes of that file on disk so far.</param>
/// <param name="FileTotal">That file's size, when known.</param>
/// <param name="Bytes">Bytes of all selected files done so far (reused files count as done).</param>
/// <param name="Total">The total size of all selected files, when every size is known.</param>
public readonly record struct HubDownloadProgress(string File, long FileBytes, long? FileTotal, long Bytes, long? Total);
