using static Osprey.Hub.Download.HubTransfer;

namespace Osprey.Hub.Download;

// File-system helpers: atomic writes, symlinks (or copies), lock files and their error wording.
public sealed partial class HfHubClient
{
    private static readonly HubTransfer.Wording Words = new("repo", "HF_HUB_CACHE");

    private static OspreyException DiskError(IOException e, string where, string repoId, string file) => HubTransfer.DiskError(Words, e, where, repoId, file);

    private static OspreyException PermissionError(Exception e, string where, string repoId) => HubTransfer.PermissionError(Words, e, where, repoId);

    private static void CreateDirectory(string dir, string repoId) => HubTransfer.CreateDirectory(Words, dir, repoId);

    private static void WriteAllTextAtomic(string path, string text, string repoId)
    {
        var tmp = path + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            File.WriteAllText(tmp, text);
            File.Move(tmp, path, overwrite: true);
        }
        catch (UnauthorizedAccessException e)
        {
            throw PermissionError(e, path, repoId);
        }
        catch (IOException e)
        {
            DeleteQuietly(tmp);
            throw DiskError(e, path, repoId, Path.GetFileName(path));
        }
    }

    /// <summary>True when <paramref name="pointer"/> is a file, or a symlink whose blob exists (a dangling one is not).</summary>
    private static bool IsUsable(string pointer)
    {
        var info = new FileInfo(pointer);
        if (!info.Exists) return false;
        if (info.LinkTarget is null) return true;
        return info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    private static void LinkOrCopy(string blob, string pointer, string relativeTarget, string repoId)
    {
        if (IsUsable(pointer)) return;
        if (new FileInfo(pointer).LinkTarget is not null) DeleteQuietly(pointer); // dangling: its blob was removed
        try
        {
            File.CreateSymbolicLink(pointer, relativeTarget);
            return;
        }
        catch (IOException) when (File.Exists(pointer))
        {
            return; // another downloader made it meanwhile
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            // Symlinks unavailable (Windows without developer mode, some network filesystems): copy instead.
        }
        var tmp = pointer + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            File.Copy(blob, tmp, overwrite: true);
            File.Move(tmp, pointer, overwrite: true);
        }
        catch (UnauthorizedAccessException e)
        {
            throw PermissionError(e, pointer, repoId);
        }
        catch (IOException e)
        {
            DeleteQuietly(tmp);
            throw DiskError(e, pointer, repoId, Path.GetFileName(pointer));
        }
    }

    private Task<IDisposable> AcquireLockAsync(string lockPath, string repoId, string file, CancellationToken ct) =>
        HubTransfer.AcquireLockAsync(Words, lockPath, _options.LockTimeout, repoId, file, ct);

    private static void CheckRepoId(string repoId)
    {
        if (!HubCache.IsRepoId(repoId))
            throw new OspreyException($"{repoId} is not a hub repo id: pass one such as Qwen/Qwen2.5-0.5B-Instruct.");
    }
}
