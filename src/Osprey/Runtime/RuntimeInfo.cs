using TorchSharp;

namespace Osprey.Runtime;

/// <summary>What <see cref="TorchRuntime.Initialize"/> found and chose.</summary>
/// <param name="Device">The device models run on.</param>
/// <param name="LibTorchPath">The folder libtorch was loaded from.</param>
/// <param name="LibTorchVersion">Its version (PyTorch's for a CUDA libtorch).</param>
/// <param name="CudaDeviceCount">Usable CUDA devices (0 on the CPU path).</param>
/// <param name="CudaNote">Why CUDA was or was not used, for <c>osprey env</c> and errors.</param>
public sealed record RuntimeInfo(torch.Device Device, string LibTorchPath, string LibTorchVersion, int CudaDeviceCount, string CudaNote);
