using System.Security.Cryptography;
using System.Text;

namespace Osprey.Hub.Upload;

/// <summary>
/// One file of the folder being uploaded: its path in the repository ('/'-separated), size, sha256 (the LFS oid), git
/// blob sha1 (the oid of a regular file) and first 512 bytes (the "sample" the hub uses to tell text from binary).
/// </summary>
public sealed record LocalFile(string PathInRepo, string FullPath, long Size, string Sha256, string GitSha1, byte[] Sample)
{
    /// <summary>
    /// The files under <paramref name="folder"/>, sorted by path, each read once from disk in 1 MiB blocks for both hashes.
    /// Dot-folders and dot-files (.git, .cache, .gitattributes written by other tools) and names in <paramref name="exclude"/> are left out.
    /// </summary>
    /// <exception cref="OspreyException">The folder is missing or empty.</exception>
    public static IReadOnlyList<LocalFile> Scan(string folder, IReadOnlyCollection<string>? exclude = null, CancellationToken cancel = default)
    {
        if (!Directory.Exists(folder))
            throw new OspreyException($"The folder to upload, {folder}, does not exist: pass the folder osprey export or osprey sft wrote.");
        var root = Path.GetFullPath(folder);
        var files = new List<LocalFile>();
        foreach (var full in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(root, full).Replace(Path.DirectorySeparatorChar, '/');
            if (rel.Split('/').Any(part => part.StartsWith('.'))) continue;
            if (exclude is not null && exclude.Contains(rel)) continue;
            files.Add(Hash(rel, full, cancel));
        }
        if (files.Count == 0)
            throw new OspreyException($"The folder to upload, {folder}, has no files: pass the folder osprey export or osprey sft wrote.");
        files.Sort((a, b) => string.CompareOrdinal(a.PathInRepo, b.PathInRepo));
        return files;
    }

    private static LocalFile Hash(string rel, string full, CancellationToken cancel)
    {
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var size = stream.Length;
        using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        // git hashes "blob {size}\0" followed by the content.
        sha1.AppendData(Encoding.ASCII.GetBytes($"blob {size}\0"));
        var buffer = new byte[1 << 20];
        var sample = new byte[Math.Min(512, size)];
        long read = 0;
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            cancel.ThrowIfCancellationRequested();
            if (read < sample.Length) Array.Copy(buffer, 0, sample, read, Math.Min(n, sample.Length - read));
            sha256.AppendData(buffer, 0, n);
            sha1.AppendData(buffer, 0, n);
            read += n;
        }
        return new LocalFile(rel, full, size, Convert.ToHexStringLower(sha256.GetHashAndReset()), Convert.ToHexStringLower(sha1.GetHashAndReset()), sample);
    }
}
