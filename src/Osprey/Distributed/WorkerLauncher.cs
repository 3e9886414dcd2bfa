using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Osprey.Distributed;

/// <summary>
/// What <c>NPROC_PER_NODE=N osprey sft …</c> does instead of training: starts N workers of the same command on this
/// node with torchrun's variables (RANK = NODE_RANK × N + LOCAL_RANK, LOCAL_RANK, WORLD_SIZE = NNODES × N,
/// LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT and, as torchrun, OMP_NUM_THREADS=1 unless set), waits for
/// them, and when one fails stops the others and names the rank. SIGTERM is passed on to the workers (each saves a
/// checkpoint and stops); Ctrl-C reaches them from the terminal itself.
/// </summary>
public static class WorkerLauncher
{
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int signal);

    const int SigTerm = 15;

    /// <summary>
    /// Runs the job's workers on this node: <paramref name="command"/> is the program and its arguments (the same
    /// command line the user typed). Returns 0 when every worker succeeded, else the first failing worker's exit code.
    /// </summary>
    public static int Run(IReadOnlyList<string> command, DistributedEnvironment environment, TextWriter stderr)
    {
        var perNode = environment.ProcessesPerNode ?? 1;
        var world = perNode * environment.Nodes;
        var workers = new List<(int Rank, Process Process)>();
        var stopping = false;
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stopping = true;
            lock (workers)
                foreach (var (_, p) in workers)
                    if (!p.HasExited) Kill(p.Id, SigTerm);
        });
        // The terminal sends Ctrl-C to every worker too: wait for their checkpoints instead of dying first.
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            stopping = true;
        });
        stderr.WriteLine($"osprey: starting {perNode} worker(s) on node {environment.NodeRank} of {environment.Nodes}; world size {world}, rendezvous at {environment.MasterAddress}:{environment.MasterPort}.");
        try
        {
            for (var local = 0; local < perNode; local++)
            {
                var rank = environment.NodeRank * perNode + local;
                var start = WorkerStart(command, rank, local, world, perNode, environment.NodeRank, environment.MasterAddress, environment.MasterPort);
                lock (workers) workers.Add((rank, Process.Start(start) ?? throw new OspreyException($"could not start worker {rank} ({command[0]}).")));
            }
            while (true)
            {
                List<(int Rank, Process Process)> snapshot;
                lock (workers) snapshot = [.. workers];
                if (snapshot.All(w => w.Process.HasExited))
                {
                    var failed = snapshot.FirstOrDefault(w => w.Process.ExitCode != 0);
                    return failed.Process is null ? 0 : failed.Process.ExitCode;
                }
                var dead = snapshot.FirstOrDefault(w => w.Process.HasExited && w.Process.ExitCode != 0);
                if (dead.Process is not null && !stopping)
                {
                    var code = dead.Process.ExitCode;
                    var how = code > 128 ? $"was killed by signal {code - 128}" : $"exited with code {code}";
                    var others = snapshot.Count(w => !w.Process.HasExited);
                    stderr.WriteLine($"osprey: rank {dead.Rank} (pid {dead.Process.Id}) {how}; stopping the other {others} worker(s).");
                    StopAll(snapshot);
                    return code == 0 ? 1 : code;
                }
                Thread.Sleep(100);
            }
        }
        finally
        {
            lock (workers) StopAll(workers);
            foreach (var (_, p) in workers) p.Dispose();
        }
    }

    /// <summary>
    /// How one worker of <paramref name="command"/> starts: torchrun's variables for <paramref name="rank"/> (of
    /// <paramref name="world"/>, <paramref name="perNode"/> on this node), the launcher's pid, and OMP_NUM_THREADS=1
    /// unless set when several share the node. Tensor-parallel serving starts its workers the same way.
    /// </summary>
    internal static ProcessStartInfo WorkerStart(IReadOnlyList<string> command, int rank, int local, int world, int perNode, int nodeRank, string masterAddress, int masterPort)
    {
        var start = new ProcessStartInfo(command[0]) { UseShellExecute = false };
        foreach (var a in command.Skip(1)) start.ArgumentList.Add(a);
        var env = start.Environment;
        env["RANK"] = rank.ToString(CultureInfo.InvariantCulture);
        env["LOCAL_RANK"] = local.ToString(CultureInfo.InvariantCulture);
        env["WORLD_SIZE"] = world.ToString(CultureInfo.InvariantCulture);
        env["LOCAL_WORLD_SIZE"] = perNode.ToString(CultureInfo.InvariantCulture);
        env["GROUP_RANK"] = nodeRank.ToString(CultureInfo.InvariantCulture);
        env["MASTER_ADDR"] = masterAddress;
        env["MASTER_PORT"] = masterPort.ToString(CultureInfo.InvariantCulture);
        env[ProcessGroup.LauncherPidVariable] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        // torchrun's default: N workers each with all cores' threads would oversubscribe the CPU.
        if (perNode > 1 && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OMP_NUM_THREADS"))) env["OMP_NUM_THREADS"] = "1";
        return start;
    }

    static void StopAll(IEnumerable<(int Rank, Process Process)> workers)
    {
        foreach (var (_, p) in workers)
        {
            if (p.HasExited) continue;
            try
            {
                p.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It ended between the check and the kill.
            }
        }
        foreach (var (_, p) in workers) p.WaitForExit();
    }
}
