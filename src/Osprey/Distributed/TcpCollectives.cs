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

    public TcpCollectives(Rendezvous rendezvous) => _rendezvous = rendezvous;

    public int Rank => _rendezvous.Rank;

    public int WorldSize => _rendezvous.WorldSize;

    public void AllReduceSum(IReadOnlyList<Tensor> tensors)
    {
        if (WorldSize == 1) return;
        foreach (var t in tensors)
        {
            Check(t);
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
        using var summed = input.clone();
        AllReduceSum([summed]);
        using var mine = summed.view(-1).narrow(0, Rank * output.numel(), output.numel());
        using var target = output.view(-1);
        target.copy_(mine);
    }

    public void AllGather(Tensor input, Tensor output)
    {
        Check(input);
        Check(output);
        var n = input.numel();
        if (output.numel() != n * WorldSize) throw new ArgumentException("output must hold WorldSize × input elements");
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

    // The rendezvous belongs to the ProcessGroup, which closes it.
    public void Dispose() { }
}
