using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// What a kernel launched outside libtorch needs from it: the raw device address of a tensor and the cudaStream_t of
/// libtorch's current stream (so the kernel is ordered with, and captured into CUDA graphs with, the surrounding work).
/// TorchSharp exposes neither; both come from exported symbols: LibTorchSharp's THSTensor_data and
/// c10::cuda::getCurrentCUDAStream / CUDAStream::stream() (Itanium mangling, as <see cref="CudaGraph"/> binds them).
/// </summary>
internal static unsafe class CudaStreams
{
    [StructLayout(LayoutKind.Sequential)]
    struct CudaStream
    {
        public long Device;
        public long Id;
    }

    static delegate* unmanaged[Cdecl]<IntPtr, IntPtr> _data;
    static delegate* unmanaged[Cdecl]<sbyte, CudaStream> _current;
    static delegate* unmanaged[Cdecl]<CudaStream*, IntPtr> _stream;
    static string? _why;
    static readonly object Gate = new();

    /// <summary>True when the symbols were found; <paramref name="why"/> says what is missing otherwise.</summary>
    public static bool TryBind(out string why)
    {
        lock (Gate)
        {
            if (_why is null) _why = Bind();
            why = _why;
            return _why.Length == 0;
        }
    }

    static string Bind()
    {
        var info = TorchRuntime.Current;
        if (info is null || info.CudaDeviceCount == 0) return "no CUDA libtorch is loaded";
        // LibTorchSharp is already loaded by TorchSharp from a path of its choosing: find that path in this process's maps.
        var bridge = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && f[5].EndsWith("libLibTorchSharp.so", StringComparison.Ordinal)).Select(f => f[5]).FirstOrDefault();
        if (bridge is null || !NativeLibrary.TryLoad(bridge, out var sharp) || !NativeLibrary.TryGetExport(sharp, "THSTensor_data", out var data))
            return "libLibTorchSharp.so's THSTensor_data was not found in this process";
        var folder = info.LibTorchPath;
        if (File.Exists(folder)) folder = Path.GetDirectoryName(folder) ?? folder;
        if (!NativeLibrary.TryLoad(Path.Combine(folder, "libc10_cuda.so"), out var c10)
            || !NativeLibrary.TryGetExport(c10, "_ZN3c104cuda20getCurrentCUDAStreamEa", out var current)
            || !NativeLibrary.TryGetExport(c10, "_ZNK3c104cuda10CUDAStream6streamEv", out var stream))
            return $"{folder}/libc10_cuda.so lacks c10::cuda::getCurrentCUDAStream or CUDAStream::stream()";
        _data = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)data;
        _current = (delegate* unmanaged[Cdecl]<sbyte, CudaStream>)current;
        _stream = (delegate* unmanaged[Cdecl]<CudaStream*, IntPtr>)stream;
        return "";
    }

    /// <summary>The device address of <paramref name="t"/>'s first element.</summary>
    public static IntPtr Address(Tensor t) => _data(t.Handle);

    /// <summary>libtorch's current stream on CUDA device <paramref name="device"/> on this thread.</summary>
    public static IntPtr Current(int device)
    {
        var s = _current((sbyte)device);
        return _stream(&s);
    }
}
