using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// Host arrays to device tensors for a training step's micro-batch. A plain upload copies from pageable memory, which
/// waits for the device to finish the work queued before it: on an H100 (session 16, <c>OSPREY_PROFILE=3</c>) a
/// step's "batch to device" phase absorbed the whole device lead that way, so each micro-batch starts from an idle
/// device. With <c>OSPREY_PINNED_BATCHES=1</c> the arrays are staged in pinned memory (libtorch's caching host
/// allocator, which keeps a block until the copies reading it are done) and copied without waiting, so the host can
/// queue the next forward pass while the device finishes the last step; SFT then also takes the labelled positions from
/// the host (<see cref="Osprey.Models.TrainForwardOptions.LabelledPositions"/>), since finding them on the device
/// (<c>nonzero</c>) waits the same way. Off by default until measured on a GPU.
/// </summary>
public static class HostUpload
{
    /// <summary>True when <c>OSPREY_PINNED_BATCHES=1</c>.</summary>
    internal static bool Pinned { get; set; } = Environment.GetEnvironmentVariable("OSPREY_PINNED_BATCHES") == "1";

    /// <summary><paramref name="data"/> as an int64 tensor of <paramref name="shape"/> on <paramref name="device"/>.</summary>
    public static Tensor Int64(long[] data, long[] shape, Device device)
    {
        if (!Pinned || device.type != DeviceType.CUDA) return tensor(data, shape, device: device);
        using var host = tensor(data, shape);
        using var pinned = host.pin_memory();
        return pinned.to(device, non_blocking: true);
    }
}
