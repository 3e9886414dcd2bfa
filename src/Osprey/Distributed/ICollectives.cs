using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>
/// The collective operations distributed training needs, over every rank of one job: NCCL on GPUs
/// (<see cref="ProcessGroup"/> picks it for CUDA tensors) and TCP sockets on the CPU (CI and CPU training, as PyTorch's
/// gloo). Every rank calls the same operations in the same order with tensors of the same shape and dtype;
/// tensors are contiguous and on the group's device. Sums are float32, float64 or int64.
/// </summary>
public interface ICollectives : IDisposable
{
    /// <summary>This process's rank, 0 … <see cref="WorldSize"/> − 1.</summary>
    int Rank { get; }

    /// <summary>The number of ranks.</summary>
    int WorldSize { get; }

    /// <summary>Replaces each tensor with the element-wise sum over all ranks (the list is one group of operations: one NCCL group, one round trip on TCP).</summary>
    void AllReduceSum(IReadOnlyList<Tensor> tensors);

    /// <summary>
    /// <paramref name="output"/> (n elements) receives the element-wise sum over ranks of this rank's slice
    /// [rank·n, (rank+1)·n) of <paramref name="input"/> (n·<see cref="WorldSize"/> elements).
    /// </summary>
    void ReduceScatterSum(Tensor input, Tensor output);

    /// <summary><paramref name="output"/> (n·<see cref="WorldSize"/> elements) receives every rank's <paramref name="input"/> (n elements), in rank order.</summary>
    void AllGather(Tensor input, Tensor output);

    /// <summary>Every rank's <paramref name="tensor"/> receives the values of rank <paramref name="root"/>'s.</summary>
    void Broadcast(Tensor tensor, int root);

    /// <summary>
    /// Starts <see cref="AllReduceSum"/> and returns at once, so the caller's next work overlaps the transfer: on NCCL
    /// it runs on the communicator's own stream after the work already queued on libtorch's stream, on TCP on a
    /// background thread. The tensors must stay alive and unwritten until <see cref="ICollectiveWork.Wait"/>; every
    /// operation of the group, started or synchronous, still runs in call order.
    /// </summary>
    ICollectiveWork AllReduceSumAsync(IReadOnlyList<Tensor> tensors);

    /// <summary>Starts <see cref="AllGather"/> as <see cref="AllReduceSumAsync"/> does (ZeRO-3's prefetch of the next layer).</summary>
    ICollectiveWork AllGatherAsync(Tensor input, Tensor output);
}
