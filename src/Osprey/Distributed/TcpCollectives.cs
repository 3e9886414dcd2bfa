using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// Collectives over the rendezvous sockets for CPU tensors (CI and CPU training; NCCL is the GPU path). Rank 0 sums
/// the ranks' tensors in rank order and sends the result back, so every rank holds the same bits and a sum over two
/// ranks equals the gradient accumulation of one process bit for bit (a + b is exact to the same rounding either way).
/// Bandwidth grows with the world size at rank 0: this is for CPU-sized models, not for scaling. With one rank it is
/// the identity on any device, which is what a plain (not launched) process uses.
/// </summary>
internal sealed class TcpCollectives : ICollectives
{
    readonly Rendezvous _rendezvous;

    readonly object _gate = new();
    Task _tail = Task.CompletedTask; // the last started operation: each runs after the one before, on a background thread

    public TcpCollectives(Rendezvous rendezvous) => _rendezvous = rendezvous;

    public int Rank => _rendezvous.Rank;

    public int WorldSize => _rendezvous.WorldSize;

    public void AllReduceSum(IReadOnlyList<Tensor> tensors)
    {
        foreach (var t in tensors) Check(t);
        Drain();
        AllReduceCore(tensors);
    }

    public ICollectiveWork AllReduceSumAsync(IReadOnlyList<Tensor> tensors)
    {
        foreach (var t in tensors) Check(t);
        var list = tensors.ToArray();
        return Start(() => AllReduceCore(list));
    }

    public ICollectiveWork AllGatherAsync(Tensor input, Tensor output)
    {
        CheckGather(input, output);
        return Start(() => AllGatherCore(input, output));
    }

    /// <summary>Queues <paramref name="op"/> after every operation started before it (the ranks' sockets carry one at a time).</summary>
    ICollectiveWork Start(Action op)
    {
        if (WorldSize == 1)
        {
            op();
            return CompletedCollective.Instance;
        }
        lock (_gate)
        {
            _tail = _tail.ContinueWith(previous =>
            {
                previous.GetAwaiter().GetResult(); // a failed transfer fails every later one: the streams are out of step
                op();
            }, CancellationToken.None, TaskContinuationOptions.LongRunning, TaskScheduler.Default);
            return new Work(_tail);
        }
    }

    /// <summary>Waits for the started operations, so a synchronous one takes its turn in call order.</summary>
    void Drain()
    {
        Task tail;
        lock (_gate) tail = _tail;
        tail.GetAwaiter().GetResult();
    }

    sealed class Work(Task task) : ICollectiveWork
    {
        public void Wait() => task.GetAwaiter().GetResult();
    }

    void AllReduceCore(IReadOnlyList<Tensor> tensors)
    {
        if (WorldSize == 1) return;
        foreach (var t in tensors)
        {
            if (Rank == 0)
            {
                using var incoming = empty_like(t);
                for (var r = 1; r < WorldSize; r++)
                {
                    Receive(r, incoming);
                    t.add_(incoming);
                }
                for (var r = 1; r < WorldSize; r++) Send(r, t);
            }
            else
            {
                Send(0, t);
                Receive(0, t);
            }
        }
    }

    public void ReduceScatterSum(Tensor input, Tensor output)
    {
        Check(input);
        Check(output);
        if (input.numel() != output.numel() * WorldSize) throw new ArgumentException("input must hold WorldSize × output elements");
        Drain();
        using var summed = input.clone();
        AllReduceCore([summed]);
        using var mine = summed.view(-1).narrow(0, Rank * output.numel(), output.numel());
        using var target = output.view(-1);
        target.copy_(mine);
    }

    public void AllGather(Tensor input, Tensor output)
    {
        CheckGather(input, output);
        Drain();
        AllGatherCore(input, output);
    }

    void CheckGather(Tensor input, Tensor output)
    {
        Check(input);
        Check(output);
        if (output.numel() != input.numel() * WorldSize) throw new ArgumentException("output must hold WorldSize × input elements");
    }

    void AllGatherCore(Tensor input, Tensor output)
    {
        var n = input.numel();
        using var flat = output.view(-1);
        using (var own = flat.narrow(0, Rank * n, n))
        using (var source = input.view(-1)) own.copy_(source);
        if (WorldSize == 1) return;
        if (Rank == 0)
        {
            for (var r = 1; r < WorldSize; r++)
            {
                using var slot = flat.narrow(0, r * n, n);
                Receive(r, slot);
            }
            for (var r = 1; r < WorldSize; r++) Send(r, output);
        }
        else
        {
            Send(0, input);
            Receive(0, output);
        }
    }

    public void Broadcast(Tensor tensor, int root)
    {
        Check(tensor);
        if (WorldSize == 1) return;
        Drain();
        // Through rank 0, the hub of the star.
        if (root != 0)
        {
            if (Rank == root) Send(0, tensor);
            else if (Rank == 0) Receive(root, tensor);
        }
        if (Rank == 0)
        {
            for (var r = 1; r < WorldSize; r++)
                if (r != root) Send(r, tensor);
        }
        else if (Rank != root)
        {
            Receive(0, tensor);
        }
    }

    void Check(Tensor t)
    {
        // A group of one (a plain process, even on a GPU) moves nothing: any device will do.
        if (WorldSize == 1) return;
        if (t.device_type != DeviceType.CPU) throw new OspreyException("the TCP backend sums CPU tensors only; training on CUDA uses NCCL.");
        if (!t.is_contiguous()) throw new ArgumentException("collectives need contiguous tensors");
    }

    // Spans are limited to 2 GiB: move larger tensors in slices of a flat view.
    const long SliceBytes = 1L << 28;

    void Send(int rank, Tensor t) => ForEachSlice(t, s => _rendezvous.Send(rank, s.bytes));

    void Receive(int rank, Tensor t) => ForEachSlice(t, s => _rendezvous.Receive(rank, s.bytes));

    static void ForEachSlice(Tensor t, Action<Tensor> action)
    {
        using var flat = t.view(-1);
        var count = flat.shape[0];
        var perSlice = Math.Max(1, SliceBytes / t.ElementSize);
        for (long start = 0; start < count; start += perSlice)
        {
            using var slice = flat.narrow(0, start, Math.Min(perSlice, count - start));
            action(slice);
        }
    }

    // The rendezvous belongs to the ProcessGroup, which closes it (and so ends any transfer still waiting on it).
    public void Dispose()
    {
        Task tail;
        lock (_gate) tail = _tail;
        try { tail.Wait(TimeSpan.FromSeconds(10)); }
        catch (AggregateException) { } // already reported to whoever waited on it
    }
}
