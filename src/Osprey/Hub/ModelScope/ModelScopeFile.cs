namespace Osprey.Hub.ModelScope;

/// <summary>One file of a ModelScope repository as its file-list API reports it.</summary>
/// <param name="Path">The path inside the repository (<c>Path</c>), with forward slashes.</param>
/// <param name="Size">The size in bytes (<c>Size</c>), when reported.</param>
/// <param name="Sha256">The lowercase sha256 of the content (<c>Sha256</c>), when reported.</param>
/// <param name="Revision">The commit the file was last changed in (<c>Revision</c>), when reported.</param>
public sealed record ModelScopeFile(string Path, long? Size = null, string? Sha256 = null, string? Revision = null);
