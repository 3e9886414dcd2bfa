using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// Collectives on CUDA tensors through NCCL, enqueued on libtorch's current stream of the rank's device, so they are
/// ordered after the kernels that produced the tensors and before those that read the results, with no host sync.
/// The communicator is made from a unique id that rank 0 creates and the rendezvous hands to every rank.
/// Started (asynchronous) operations run on the communicator's own stream instead, after an event that marks the work
/// queued on libtorch's stream so far; a synchronous operation issued after them first makes libtorch's stream wait for
/// that side stream, so the communicator's operations run in call order, as NCCL requires on every rank.
/// </summary>
internal sealed class NcclCollectives : ICollectives
{
    readonly IntPtr _comm;
    readonly int _device;
    IntPtr _side; // the stream of started operations, made on first use
    IntPtr _sideTail; // an event after the last operation started on _side, until a synchronous one has waited for it

    NcclCollectives(IntPtr comm, int device, int rank, int worldSize)
    {
        _comm = comm;
        _device = device;
        Rank = rank;
        WorldSize = worldSize;
    }

    public int Rank { get; }

    public int WorldSize { get; }

    /// <summary>Loads NCCL and joins the communicator of <paramref name="rendezvous"/>'s ranks on CUDA device <paramref name="device"/>.</summary>
    /// <exception cref="OspreyException">NCCL or libtorch's stream symbols are missing, or NCCL fails to initialise.</exception>
    public static NcclCollectives Create(Rendezvous rendezvous, int device, TextWriter log)
    {
        if (!Nccl.TryLoad(out var where)) throw new OspreyException($"NCCL is not available: {where}.");
        if (!CudaStreams.TryBind(out var why)) throw new OspreyException($"NCCL needs libtorch's CUDA stream: {why}.");
        byte[] idBytes;
        unsafe
        {
            if (rendezvous.Rank == 0)
            {
                var id = Nccl.NewUniqueId();
                idBytes = new Span<byte>(id.Internal, 128).ToArray();
            }
            else
            {
                idBytes = [];
            }
        }
        idBytes = rendezvous.Broadcast(rendezvous.Rank == 0 ? idBytes : null);
        var unique = new Nccl.UniqueId();
        unsafe
        {
            idBytes.AsSpan(0, 128).CopyTo(new Span<byte>(unique.Internal, 128));
        }
        CudaDriver.MakeCurrent(device);
        var comm = Nccl.InitRank(rendezvous.WorldSize, unique, rendezvous.Rank);
        if (rendezvous.Rank == 0) log.WriteLine($"osprey: NCCL {Nccl.Version()} ({where}) across {rendezvous.WorldSize} ranks.");
        return new NcclCollectives(comm, device, rendezvous.Rank, rendezvous.WorldSize);
    }

    public void AllReduceSum(IReadOnlyList<Tensor> tensors) => AllReduceOn(Enter(), tensors);

    public ICollectiveWork AllReduceSumAsync(IReadOnlyList<Tensor> tensors) => Started(tensors, side => AllReduceOn(side, tensors));

    public ICollectiveWork AllGatherAsync(Tensor input, Tensor output)
    {
        CheckGather(input, output);
        return Started([input, output], side => Nccl.AllGather(CudaStreams.Address(input), CudaStreams.Address(output), input.numel(), TypeOf(input), _comm, side));
    }

    /// <summary>Queues <paramref name="enqueue"/> on the side stream after the work queued so far on libtorch's stream.</summary>
    ICollectiveWork Started(Tensor[] keep, Action<IntPtr> enqueue)
    {
        var compute = Current(); // not Enter: libtorch's stream must not wait for earlier started operations, or nothing overlaps
        if (_side == IntPtr.Zero) _side = CudaDriver.CreateStream();
        var ready = CudaDriver.Record(compute);
        CudaDriver.Wait(_side, ready);
        CudaDriver.DestroyEvent(ready);
        enqueue(_side);
        if (_sideTail != IntPtr.Zero) CudaDriver.DestroyEvent(_sideTail);
        _sideTail = CudaDriver.Record(_side);
        return new Work(this, CudaDriver.Record(_side), keep);
    }

    ICollectiveWork Started(IReadOnlyList<Tensor> tensors, Action<IntPtr> enqueue)
    {
        foreach (var t in tensors) Check(t);
        return Started(tensors.ToArray(), enqueue);
    }

    /// <summary>
    /// A started operation: <see cref="Wait"/> makes libtorch's stream wait for its event. It holds the tensors so the
    /// caching allocator cannot hand their memory to other work while the side stream still uses it.
    /// </summary>
    sealed class Work(NcclCollectives owner, IntPtr done, Tensor[] keep) : ICollectiveWork
    {
        IntPtr _done = done;

        public void Wait()
        {
            if (_done == IntPtr.Zero) return;
            CudaDriver.Wait(owner.Current(), _done);
            CudaDriver.DestroyEvent(_done);
            _done = IntPtr.Zero;
            GC.KeepAlive(keep);
        }
    }

    void AllReduceOn(IntPtr stream, IReadOnlyList<Tensor> tensors)
    {
        Nccl.GroupStart();
        try
        {
            foreach (var t in tensors)
            {
                Check(t);
                var p = CudaStreams.Address(t);
                Nccl.AllReduce(p, p, t.numel(), TypeOf(t), _comm, stream);
            }
        }
        finally
        {
            Nccl.GroupEnd();
        }
    }

    public void ReduceScatterSum(Tensor input, Tensor output)
    {
        Check(input);
        Check(output);
        if (input.numel() != output.numel() * WorldSize) throw new ArgumentException("input must hold WorldSize × output elements");
        Nccl.ReduceScatter(CudaStreams.Address(input), CudaStreams.Address(output), output.numel(), TypeOf(output), _comm, Enter());
    }

    public void AllGather(Tensor input, Tensor output)
    {
        CheckGather(input, output);
        Nccl.AllGather(CudaStreams.Address(input), CudaStreams.Address(output), input.numel(), TypeOf(input), _comm, Enter());
    }

    public void Broadcast(Tensor tensor, int root)
    {
        Check(tensor);
        var p = CudaStreams.Address(tensor);
        Nccl.Broadcast(p, p, tensor.numel(), TypeOf(tensor), root, _comm, Enter());
    }

    /// <summary>
    /// Makes the rank's device current (libtorch's guards may have left another) and returns libtorch's stream on it,
    /// which from then on waits for every operation started on the side stream.
    /// </summary>
    IntPtr Enter()
    {
        var stream = Current();
        if (_sideTail != IntPtr.Zero)
        {
            CudaDriver.Wait(stream, _sideTail);
            CudaDriver.DestroyEvent(_sideTail);
            _sideTail = IntPtr.Zero;
        }
        return stream;
    }

    /// <summary>Makes the rank's device current and returns libtorch's current stream on it.</summary>
    IntPtr Current()
    {
        CudaDriver.MakeCurrent(_device);
        return CudaStreams.Current(_device);
    }

    void CheckGather(Tensor input, Tensor output)
    {
        Check(input);
        Check(output);
        if (output.numel() != input.numel() * WorldSize) throw new ArgumentException("output must hold WorldSize × input elements");
    }

    void Check(Tensor t)
    {
        if (t.device_type != DeviceType.CUDA || t.device_index != _device)
            throw new OspreyException($"NCCL on cuda:{_device} was given a tensor on {t.device}; each rank keeps its tensors on its own GPU.");
        if (!t.is_contiguous()) throw new ArgumentException("collectives need contiguous tensors");
    }

    static Nccl.DataType TypeOf(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => Nccl.DataType.Float32,
        ScalarType.Float64 => Nccl.DataType.Float64,
        ScalarType.BFloat16 => Nccl.DataType.Bfloat16,
        ScalarType.Float16 => Nccl.DataType.Float16,
        ScalarType.Int64 => Nccl.DataType.Int64,
        ScalarType.Int32 => Nccl.DataType.Int32,
        ScalarType.Byte => Nccl.DataType.Uint8,
        ScalarType.Int8 => Nccl.DataType.Int8,
        _ => throw new ArgumentException($"NCCL has no {t.dtype}"),
    };

    public void Dispose()
    {
        Nccl.Destroy(_comm);
        if (_sideTail != IntPtr.Zero) CudaDriver.DestroyEvent(_sideTail);
        if (_side != IntPtr.Zero) CudaDriver.DestroyStream(_side);
    }
}
