using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// Host arrays to device tensors without waiting for the device. A plain upload copies from pageable memory, which
/// waits for the device to finish the work queued before it: on an H100 (session 16, <c>OSPREY_PROFILE=3</c>) a
/// training step's "batch to device" phase absorbed the whole device lead that way, so each micro-batch starts from an
/// idle device. Staged in pinned memory (libtorch's caching host allocator, which keeps a block until the copies
/// reading it are done) the copy is queued without waiting. Two switches, each off by default (measured on an H100 in
/// session 18, neither gave a consistent gain: benchmarks/session18-h100.md):
/// <c>OSPREY_PINNED_BATCHES=1</c> for training's micro-batches (SFT and pretraining, and the preference recipes' policy and
/// reference passes; SFT then also takes the labelled positions from the host,
/// <see cref="Osprey.Models.TrainForwardOptions.LabelledPositions"/>, since finding them on the device with
/// <c>nonzero</c> waits the same way), and <c>OSPREY_PINNED_DECODE=1</c> for the serving engine's decode inputs (token
/// ids, positions, row indexes), so that a pipelined step (<c>OSPREY_ASYNC_DECODE=1</c>) is queued behind the one
/// in flight instead of after it has drained.
/// </summary>
public static class HostUpload
{
    /// <summary>True when <c>OSPREY_PINNED_BATCHES=1</c>.</summary>
    internal static bool Pinned { get; set; } = Environment.GetEnvironmentVariable("OSPREY_PINNED_BATCHES") == "1";

    /// <summary>True when <c>OSPREY_PINNED_DECODE=1</c>.</summary>
    internal static bool PinnedDecode { get; set; } = Environment.GetEnvironmentVariable("OSPREY_PINNED_DECODE") == "1";

    /// <summary><paramref name="data"/> as an int64 tensor of <paramref name="shape"/> on <paramref name="device"/> (pinned when <see cref="Pinned"/>).</summary>
    public static Tensor Int64(long[] data, long[] shape, Device device) => Int64(data, shape, device, Pinned);

    /// <summary><paramref name="data"/> as an int64 tensor of <paramref name="shape"/> on <paramref name="device"/>, through pinned memory without waiting when <paramref name="pinned"/> and the device is CUDA.</summary>
    public static Tensor Int64(long[] data, long[] shape, Device device, bool pinned)
    {
        if (!pinned || device.type != DeviceType.CUDA) return tensor(data, shape, device: device);
        using var host = tensor(data, shape);
        return ToDevice(host, device);
    }

    /// <summary>
    /// Copies <paramref name="data"/> (as many elements as <paramref name="target"/> holds) into the device tensor
    /// <paramref name="target"/>, through pinned memory without waiting when <paramref name="pinned"/> and it is on CUDA.
    /// <paramref name="data"/> may be reused as soon as this returns either way.
    /// </summary>
    public static void CopyInto(Tensor target, long[] data, bool pinned)
    {
        using var host = tensor(data, target.shape);
        if (!pinned || target.device.type != DeviceType.CUDA)
        {
            target.copy_(host);
            return;
        }
        using var staged = host.pin_memory();
        target.copy_(staged, true);
    }

    /// <summary>A host tensor on a CUDA <paramref name="device"/> through a pinned copy, without waiting.</summary>
    static Tensor ToDevice(Tensor host, Device device)
    {
        using var staged = host.pin_memory();
        return staged.to(device, non_blocking: true);
    }
}
