using System.Runtime.InteropServices;

namespace Osprey.Server.Workbench;

/// <summary>kill(2), for asking a job to stop the way Ctrl-C does (SIGTERM: the run saves a checkpoint and exits).</summary>
internal static partial class PosixSignal
{
    const int SigTerm = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <summary>Sends SIGTERM to <paramref name="pid"/>; false when no such process exists.</summary>
    public static bool Terminate(int pid) => Kill(pid, SigTerm) == 0;

    /// <summary>True when process <paramref name="pid"/> is alive and was started by the web UI as job <paramref name="jobId"/>.</summary>
    public static bool IsJob(int pid, string jobId)
    {
        try
        {
            var environment = File.ReadAllText($"/proc/{pid}/environ");
            return environment.Split('\0').Contains(JobStore.JobVariable + "=" + jobId, StringComparer.Ordinal)
                && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
