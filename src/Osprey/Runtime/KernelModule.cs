namespace Osprey.Runtime;

/// <summary>
/// One NVRTC-compiled CUDA source and its kernels, per device: compiled on first use (or read from
/// <see cref="KernelCache"/>), loaded through the driver API, and launched on libtorch's current stream. Whether the
/// kernels can run at all is found once per process; the reason they can't is printed once.
/// </summary>
internal sealed unsafe class KernelModule(string name, string source, IReadOnlyList<string> kernels, string what, string fallback)
{
    /// <summary>
    /// CUDA helpers both kernel sources start with: fixed-width integer names and float32 ↔ bfloat16/float16 conversions
    /// that round to nearest even as PyTorch's casts do (without cuda_fp16.h/cuda_bf16.h, which NVRTC may not find).
    /// </summary>
    public const string DTypeHelpers = """
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;
__device__ __forceinline__ float bf2f(u16 h) { return __uint_as_float(((u32)h) << 16); }
__device__ __forceinline__ u16 f2bf(float f) {
  u32 u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (u16)(u >> 16);
}
__device__ __forceinline__ float h2f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ u16 f2h(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }

""";

    readonly object _gate = new();
    readonly Dictionary<int, IReadOnlyDictionary<string, IntPtr>> _modules = [];
    string? _unavailable;

    /// <summary>Why the kernels can't run on CUDA device <paramref name="device"/>, or null when they can.</summary>
    public string? Unavailable(int device)
    {
        lock (_gate)
        {
            if (_unavailable is null)
            {
                if (!CudaStreams.TryBind(out var why)) _unavailable = why;
                else if (!Nvrtc.TryLoad(out var where)) _unavailable = where;
                else
                {
                    try
                    {
                        Functions(device);
                        _unavailable = "";
                    }
                    catch (OspreyException e)
                    {
                        _unavailable = e.Message;
                    }
                }
                if (_unavailable.Length > 0) Console.Error.WriteLine($"note: {what} unavailable ({_unavailable}); {fallback}.");
            }
            return _unavailable.Length == 0 ? null : _unavailable;
        }
    }

    /// <summary>The kernels by name on device <paramref name="device"/>, compiled and loaded on first use.</summary>
    public IReadOnlyDictionary<string, IntPtr> Functions(int device)
    {
        lock (_gate)
        {
            if (_modules.TryGetValue(device, out var k)) return k;
            CudaDriver.EnsureContext(device);
            var (major, minor) = CudaDriver.ComputeCapability(device);
            // FMA contraction off: the kernels round as the tensor operations they replace.
            var cubin = KernelCache.CompileCubin(source, name, major, minor, ["--fmad=false", "-default-device"]);
            k = CudaDriver.Load(cubin, kernels);
            _modules[device] = k;
            return k;
        }
    }

    /// <summary>Launches <paramref name="kernel"/> on libtorch's current stream of device <paramref name="device"/>.</summary>
    public void Launch(int device, string kernel, (uint X, uint Y) grid, uint block, void** args)
    {
        var functions = Functions(device);
        var stream = CudaStreams.Current(device);
        CudaDriver.EnsureContext(device);
        CudaDriver.Launch(functions[kernel], grid, block, stream, args, kernel);
    }
}
