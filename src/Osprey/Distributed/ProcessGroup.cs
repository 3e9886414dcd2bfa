using System.Runtime.InteropServices;
using System.Text;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// The ranks of one training job as this process sees them: its rank and the world size, the rendezvous with the
/// others, and the collectives on its device (NCCL for CUDA, TCP sockets for the CPU). A process started without
/// RANK/WORLD_SIZE is a group of one, which runs through the same calls (each collective is then the identity).
/// </summary>
public sealed class ProcessGroup : IDisposable
{
    /// <summary>How long ranks wait for each other at the rendezvous (torchrun waits 900 s; model loading is not in it).</summary>
    public static readonly TimeSpan RendezvousTimeout = TimeSpan.FromSeconds(300);

    readonly Rendezvous _rendezvous;
    ICollectives? _collectives;

    ProcessGroup(DistributedEnvironment environment, Rendezvous rendezvous)
    {
        Environment = environment;
        _rendezvous = rendezvous;
    }

    /// <summary>The variables this group was made from.</summary>
    public DistributedEnvironment Environment { get; }

    /// <summary>This process's rank.</summary>
    public int Rank => _rendezvous.Rank;

    /// <summary>The number of ranks.</summary>
    public int WorldSize => _rendezvous.WorldSize;

    /// <summary>True on rank 0, the one that writes logs and checkpoints.</summary>
    public bool IsMain => Rank == 0;

    /// <summary>A group of one (no environment, no sockets).</summary>
    public static ProcessGroup Single() => new(new DistributedEnvironment(), Rendezvous.Join(new DistributedEnvironment(), TimeSpan.Zero));

    /// <summary>
    /// Joins the job that <paramref name="environment"/> describes (a group of one when it is not a worker's): rank 0
    /// listens on MASTER_PORT, the others connect. A worker started by Osprey's launcher also ends itself when the
    /// launcher is gone, so no worker outlives its job.
    /// </summary>
    /// <exception cref="OspreyException">The rendezvous fails (port taken, a rank missing).</exception>
    public static ProcessGroup Join(DistributedEnvironment environment)
    {
        if (!environment.IsWorker) return Single();
        WatchLauncher();
        return new ProcessGroup(environment, Rendezvous.Join(environment, RendezvousTimeout));
    }

    /// <summary>
    /// The device this rank trains on: with several ranks, <c>cuda</c> and <c>auto</c> mean cuda:LOCAL_RANK (as torchrun
    /// scripts pick their GPU), so each worker on a node has its own card.
    /// </summary>
    public DeviceSpec DeviceFor(DeviceSpec requested) =>
        WorldSize == 1 || requested.Kind == DeviceKind.Cpu ? requested : requested with { Index = Environment.LocalRank };

    /// <summary>
    /// The collectives on <paramref name="device"/>, made on first use: NCCL for CUDA in a launched worker (even a world
    /// of one, so the single-GPU machine tests it), TCP for the CPU, and for a plain process the identity (no NCCL
    /// needed to train on one GPU).
    /// </summary>
    public ICollectives Collectives(Device device, TextWriter log)
    {
        if (_collectives is not null) return _collectives;
        _collectives = device.type == DeviceType.CUDA && Environment.IsWorker
            ? NcclCollectives.Create(_rendezvous, device.index < 0 ? 0 : device.index, log)
            : new TcpCollectives(_rendezvous);
        return _collectives;
    }

    /// <summary>Rank 0's <paramref name="value"/> on every rank (others pass anything).</summary>
    public string BroadcastText(string value) => Encoding.UTF8.GetString(_rendezvous.Broadcast(IsMain ? Encoding.UTF8.GetBytes(value) : null));

    /// <summary>Rank 0's <paramref name="value"/> on every rank (others pass null), over the rendezvous sockets.</summary>
    public byte[] BroadcastBytes(byte[]? value) => _rendezvous.Broadcast(IsMain ? value : null);

    /// <summary>Returns when every rank has called it.</summary>
    public void Barrier() => _rendezvous.Barrier();

    /// <summary>The launcher's pid, set in each worker it starts.</summary>
    public const string LauncherPidVariable = "OSPREY_LAUNCHER_PID";

    [DllImport("libc", EntryPoint = "getppid")]
    static extern int GetParentPid();

    static void WatchLauncher()
    {
        if (System.Environment.GetEnvironmentVariable(LauncherPidVariable) is not { } text || !int.TryParse(text, out var launcher)) return;
        // If the launcher is killed (kill -9 cannot be caught, so it cannot stop us), we are re-parented: stop too.
        var thread = new Thread(() =>
        {
            while (true)
            {
                if (GetParentPid() != launcher)
                {
                    Console.Error.WriteLine($"osprey: the launcher (pid {launcher}) is gone; this worker stops.");
                    System.Environment.Exit(1);
                }
                Thread.Sleep(500);
            }
        })
        { IsBackground = true, Name = "osprey-launcher-watch" };
        thread.Start();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _collectives?.Dispose();
        _collectives = null;
        _rendezvous.Dispose();
    }
}
