using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// The ranks of one tensor-parallel model (<c>osprey deploy --tensor_parallel_size N</c>): the serving process is rank 0
/// and starts ranks 1 … N − 1 itself, on this node, as workers of the same command (torchrun's variables plus
/// <see cref="WorkerVariable"/>). Each rank holds a shard of every attention and MLP projection on its own device
/// (cuda:RANK, or the CPU with the TCP collectives); the layers sum their partial outputs with <see cref="AllReduce"/>.
/// Rank 0 tells the workers what to compute with <see cref="SendStep"/> (they <see cref="ReceiveStep"/>), over the
/// rendezvous sockets: a step's inputs are a few hundred bytes of token ids and positions.
/// </summary>
public sealed class TensorParallelGroup : IDisposable
{
    /// <summary>Set (to "1") in the workers rank 0 starts: the command then serves steps instead of starting a server.</summary>
    public const string WorkerVariable = "OSPREY_TENSOR_PARALLEL_WORKER";

    readonly ProcessGroup _group;
    readonly ICollectives _collectives;
    readonly List<(int Rank, Process Process)> _workers;
    readonly Thread? _watch;
    volatile bool _closing;

    TensorParallelGroup(ProcessGroup group, Device device, List<(int Rank, Process Process)> workers, Action<string>? onWorkerLost, TextWriter log)
    {
        _group = group;
        Device = device;
        _workers = workers;
        _collectives = group.Collectives(device, log);
        if (workers.Count > 0)
        {
            _watch = new Thread(() => Watch(onWorkerLost)) { IsBackground = true, Name = "osprey-tp-watch" };
            _watch.Start();
        }
    }

    /// <summary>This process's rank (0: the server).</summary>
    public int Rank => _group.Rank;

    /// <summary>The number of ranks (--tensor_parallel_size).</summary>
    public int WorldSize => _group.WorldSize;

    /// <summary>The device this rank's shard lives on.</summary>
    public Device Device { get; }

    /// <summary>A message about the first worker that died, once one has (null while all run).</summary>
    public string? Lost { get; private set; }

    /// <summary>True in a process that rank 0 started as a tensor-parallel worker.</summary>
    public static bool IsWorkerProcess => Environment.GetEnvironmentVariable(WorkerVariable) == "1" && DistributedEnvironment.Current.IsWorker;

    /// <summary>
    /// Rank 0: starts <paramref name="size"/> − 1 workers running <paramref name="workerCommand"/> (this program and the
    /// arguments it was given), meets them on a free local port and joins the collectives on <paramref name="device"/>
    /// (CUDA: cuda:0 here, cuda:RANK in the workers; CPU: every rank on the CPU). <paramref name="onWorkerLost"/> is
    /// told, with the rank named, when a worker ends before <see cref="Dispose"/>.
    /// </summary>
    /// <exception cref="OspreyException">Fewer GPUs than ranks, or a worker that does not come.</exception>
    public static TensorParallelGroup Start(int size, IReadOnlyList<string> workerCommand, Device device, TextWriter log, Action<string>? onWorkerLost = null)
    {
        if (size < 2) throw new ArgumentOutOfRangeException(nameof(size), "a tensor-parallel group has 2 or more ranks");
        if (workerCommand.Count == 0) throw new ArgumentException("the worker command is empty", nameof(workerCommand));
        var cuda = device.type == DeviceType.CUDA;
        if (cuda && torch.cuda.device_count() is var visible && visible < size)
            throw new OspreyException($"--tensor_parallel_size {size} needs {size} GPUs but {visible} are visible{VisibleNote()}; lower --tensor_parallel_size or make more GPUs visible.");
        var port = FreePort();
        var workers = new List<(int Rank, Process Process)>();
        try
        {
            for (var rank = 1; rank < size; rank++)
            {
                var start = WorkerLauncher.WorkerStart(workerCommand, rank, rank, size, size, 0, "127.0.0.1", port);
                start.Environment[WorkerVariable] = "1";
                workers.Add((rank, Process.Start(start) ?? throw new OspreyException($"could not start tensor-parallel rank {rank} ({workerCommand[0]}).")));
            }
            var environment = new DistributedEnvironment { IsWorker = true, Rank = 0, LocalRank = 0, WorldSize = size, LocalWorldSize = size, MasterAddress = "127.0.0.1", MasterPort = port };
            var group = JoinWatching(environment, workers);
            var pids = string.Join(", ", workers.Select(w => $"rank {w.Rank} pid {w.Process.Id}"));
            log.WriteLine($"osprey: tensor parallel over {size} ranks on {(cuda ? $"cuda:0 … cuda:{size - 1}" : "the CPU")}; this process is rank 0 and serves ({pids}).");
            return new TensorParallelGroup(group, cuda ? new Device(DeviceType.CUDA, 0) : device, workers, onWorkerLost, log);
        }
        catch
        {
            Kill(workers);
            throw;
        }
    }

    /// <summary>
    /// Rank 0's rendezvous, given up as soon as a worker ends before joining (it could not start or load: its own
    /// error is above in the log) instead of waiting out the rendezvous timeout.
    /// </summary>
    static ProcessGroup JoinWatching(DistributedEnvironment environment, List<(int Rank, Process Process)> workers)
    {
        var join = Task.Run(() => ProcessGroup.Join(environment));
        while (!join.Wait(200))
            foreach (var (rank, p) in workers)
                if (p.HasExited)
                {
                    // The rendezvous stops listening when it times out; its result is dropped whenever it comes.
                    _ = join.ContinueWith(t => t.Result.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
                    throw new OspreyException($"tensor-parallel rank {rank} (pid {p.Id}) exited with code {p.ExitCode} before joining rank 0; its error is printed above.");
                }
        return join.GetAwaiter().GetResult();
    }

    /// <summary>A worker (<see cref="IsWorkerProcess"/>): joins rank 0's group on cuda:RANK (CUDA) or the CPU.</summary>
    public static TensorParallelGroup Join(Device device, TextWriter log)
    {
        var environment = DistributedEnvironment.Current;
        if (!environment.IsWorker) throw new InvalidOperationException("not a tensor-parallel worker process");
        var group = ProcessGroup.Join(environment);
        var mine = device.type == DeviceType.CUDA ? new Device(DeviceType.CUDA, environment.LocalRank) : device;
        return new TensorParallelGroup(group, mine, [], null, log);
    }

    /// <summary>Sums <paramref name="tensor"/> (contiguous, on <see cref="Device"/>) over the ranks, in place.</summary>
    public void AllReduce(Tensor tensor) => _collectives.AllReduceSum([tensor]);

    /// <summary>Rank 0: sends one step's description to every worker (not empty: an empty message ends them).</summary>
    public void SendStep(byte[] step)
    {
        if (step.Length == 0) throw new ArgumentException("a step is never empty", nameof(step));
        _group.BroadcastBytes(step);
    }

    /// <summary>A worker: the next step rank 0 sent; empty when rank 0 is done and the worker should end.</summary>
    public byte[] ReceiveStep() => _group.BroadcastBytes(null);

    static string VisibleNote() =>
        Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES") is { Length: > 0 } v ? $" (CUDA_VISIBLE_DEVICES={v})" : "";

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    void Watch(Action<string>? onWorkerLost)
    {
        while (!_closing)
        {
            foreach (var (rank, p) in _workers)
            {
                if (!p.HasExited || _closing) continue;
                var code = p.ExitCode;
                var how = code > 128 ? $"was killed by signal {code - 128}" : $"exited with code {code}";
                Lost = $"tensor-parallel rank {rank} (pid {p.Id}) {how}; the server stops";
                onWorkerLost?.Invoke(Lost);
                return;
            }
            Thread.Sleep(200);
        }
    }

    static void Kill(IEnumerable<(int Rank, Process Process)> workers)
    {
        foreach (var (_, p) in workers)
        {
            try
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It ended between the check and the kill.
            }
            p.WaitForExit();
            p.Dispose();
        }
    }

    /// <summary>Rank 0: tells the workers to end, gives them a few seconds, then stops any that remain. Every rank: leaves the group.</summary>
    public void Dispose()
    {
        if (_closing) return;
        _closing = true;
        if (Rank == 0 && Lost is null)
        {
            try
            {
                _group.BroadcastBytes([]);
            }
            catch (OspreyException)
            {
                // A worker already went away: it is stopped below either way.
            }
        }
        foreach (var (_, p) in _workers) p.WaitForExit(TimeSpan.FromSeconds(10));
        Kill(_workers);
        _watch?.Join();
        _group.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"rank {Rank} of {WorldSize} on {Device}");
}
