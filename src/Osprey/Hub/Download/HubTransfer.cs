namespace Osprey.Hub.Download;

/// <summary>
/// What the hub download clients (<see cref="HfHubClient"/>, <see cref="ModelScope.ModelScopeClient"/>) share: retries with
/// exponential backoff, the transient-failure test, and file writes, folders and lock files whose failures become plain
/// disk-full / permission errors worded for the hub in use (<see cref="Wording"/>).
/// </summary>
internal static class HubTransfer
{
    /// <summary>How errors name a repo (<c>repo</c>, <c>ModelScope repo</c>) and which cache variable they suggest.</summary>
    internal sealed record Wording(string Repo, string CacheEnv);

    /// <summary>A failure worth retrying (5xx, a short body).</summary>
    internal sealed class TransientException(string message) : Exception(message);

    /// <summary>
    /// Runs <paramref name="attempt"/>, retrying transient failures with exponential backoff (doubling from
    /// <paramref name="initialBackoff"/> up to <paramref name="maxBackoff"/>); after <paramref name="maxRetries"/> retries
    /// it throws what <paramref name="unreachable"/> makes of the message and the last failure.
    /// </summary>
    public static async Task<T> WithRetriesAsync<T>(
        string what, string endpoint, string endpointEnv, int maxRetries, TimeSpan initialBackoff, TimeSpan maxBackoff,
        Func<string, Exception, Exception> unreachable, Func<CancellationToken, Task<T>> attempt, CancellationToken ct)
    {
        var delay = initialBackoff;
        for (var i = 0; ; i++)
        {
            try
            {
                return await attempt(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                if (i >= maxRetries)
                    throw unreachable($"Downloading {what} from {endpoint} failed after {i + 1} attempts ({e.Message}): check the network or {endpointEnv} and run it again, the download resumes.", e);
                await Task.Delay(delay, ct).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, maxBackoff.Ticks));
            }
        }
    }

    public static bool IsTransient(Exception e, CancellationToken ct) => e switch
    {
        OspreyException => false,
        TransientException or TimeoutException => true,
        HttpRequestException h => h.StatusCode is null || (int)h.StatusCode >= 500,
        OperationCanceledException => !ct.IsCancellationRequested,
        IOException => true, // network stream errors (file errors are turned into OspreyException first)
        _ => false,
    };

    /// <summary>ENOSPC (28) on Linux and macOS; ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.</summary>
    public static bool IsDiskFull(IOException e) =>
        e.HResult is 28 or unchecked((int)0x80070070) or unchecked((int)0x80070027);

    public static OspreyException DiskError(Wording w, IOException e, string where, string repoId, string file) =>
        IsDiskFull(e)
            ? new OspreyException($"The disk is full while writing file {file} of {w.Repo} {repoId} to {where}: free some space or set {w.CacheEnv} to a folder on a larger disk, then run it again.", e)
            : new OspreyException($"Writing file {file} of {w.Repo} {repoId} to {where} failed ({e.Message}): check the folder is writable and the disk is healthy.", e);

    public static OspreyException PermissionError(Wording w, Exception e, string where, string repoId) =>
        new($"Permission denied writing {where} for {w.Repo} {repoId}: make the folder writable or set {w.CacheEnv} to a folder you own.", e);

    public static FileStream OpenForWrite(Wording w, string path, bool append, string repoId, string file)
    {
        try
        {
            return new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
        }
        catch (UnauthorizedAccessException e)
        {
            throw PermissionError(w, e, path, repoId);
        }
        catch (IOException e)
        {
            throw DiskError(w, e, path, repoId, file);
        }
    }

    /// <summary>
    /// Appends to (or creates) <paramref name="incomplete"/> what <paramref name="body"/> sends, failing with a
    /// <see cref="TimeoutException"/> when no data comes for <paramref name="idleTimeout"/>; calls
    /// <paramref name="onChunk"/> with each chunk's size and the bytes held so far, and returns those bytes.
    /// </summary>
    public static async Task<long> StreamToFileAsync(Wording w, Stream body, string incomplete, bool append, long have, TimeSpan idleTimeout,
        string repoId, string file, Action<int, long> onChunk, CancellationToken ct)
    {
        await using var fs = OpenForWrite(w, incomplete, append, repoId, file);
        var buffer = new byte[1 << 16];
        while (true)
        {
            int n;
            using (var idle = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                idle.CancelAfter(idleTimeout);
                try
                {
                    n = await body.ReadAsync(buffer, idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    throw new TimeoutException($"no data for {idleTimeout.TotalSeconds:0.###}s");
                }
            }
            if (n == 0) return have;
            try
            {
                await fs.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw DiskError(w, e, incomplete, repoId, file);
            }
            have += n;
            onChunk(n, have);
        }
    }

    /// <summary>
    /// Sends <paramref name="req"/> (headers only read), failing with a <see cref="TimeoutException"/> when no response
    /// comes within <paramref name="timeout"/>.
    /// </summary>
    public static async Task<HttpResponseMessage> SendWithTimeoutAsync(HttpClient http, HttpRequestMessage req, Uri url, TimeSpan timeout, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            return await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"no response from {url.GetLeftPart(UriPartial.Path)} in {timeout.TotalSeconds:0.###}s");
        }
    }

    public static void CreateDirectory(Wording w, string dir, string repoId)
    {
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (UnauthorizedAccessException e)
        {
            throw PermissionError(w, e, dir, repoId);
        }
        catch (IOException e)
        {
            throw DiskError(w, e, dir, repoId, Path.GetFileName(dir));
        }
    }

    public static void DeleteQuietly(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// Takes an exclusive lock file (FileShare.None: flock on Unix, which Python's filelock also uses), polling
    /// until <paramref name="lockTimeout"/>.
    /// </summary>
    public static async Task<IDisposable> AcquireLockAsync(Wording w, string lockPath, TimeSpan lockTimeout, string repoId, string file, CancellationToken ct)
    {
        CreateDirectory(w, Path.GetDirectoryName(lockPath)!, repoId);
        var deadline = DateTime.UtcNow + lockTimeout;
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (UnauthorizedAccessException e)
            {
                throw PermissionError(w, e, lockPath, repoId);
            }
            catch (IOException e) when (!IsDiskFull(e))
            {
                if (DateTime.UtcNow > deadline)
                    throw new OspreyException($"File {file} of {w.Repo} {repoId} is locked by another download ({lockPath}) for over {lockTimeout.TotalSeconds:0}s: wait for it to finish, or delete the lock file if no download is running.", e);
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
        }
    }
}
