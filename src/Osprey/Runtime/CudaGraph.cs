using System.Runtime.InteropServices;
using TorchSharp;

namespace Osprey.Runtime;

/// <summary>
/// A CUDA graph captured from TorchSharp work and replayed with one launch. TorchSharp 0.107 exposes no
/// CUDA graphs or streams, so this calls libtorch's <c>at::cuda::CUDAGraph</c> and the
/// <c>c10::cuda</c> stream functions through their exported C++ symbols (Itanium mangling, Linux x64
/// SysV calling convention, <c>this</c> as the first argument), the way <see cref="CudnnAttention"/> does.
/// <para>
/// Use: put the step's inputs in static tensors, call <see cref="Capture"/> once with the step as an
/// action (it runs the action eagerly on a side stream a few times first, then once under stream
/// capture), keep every tensor the action reads or returns alive, and before each <see cref="Replay"/>
/// copy new data into the static inputs (<c>copy_</c>, <c>fill_</c>). Tensors allocated while capturing
/// come from the graph's private memory pool; replay rewrites them in place.
/// </para>
/// <para>
/// The captured action must not synchronise with the host (<c>.cpu()</c>, <c>item</c>, tensors built
/// from host arrays) or change shapes between replays. A failure inside libtorch during capture is a C++
/// exception that cannot cross into .NET and ends the process.
/// </para>
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    // sizeof(at::cuda::CUDAGraph) is not exported; a few hundred bytes in libtorch 2.x. Generous and zeroed.
    const int ObjectBytes = 16 * 1024;

    /// <summary>cudaStreamCaptureModeThreadLocal: other threads (the .NET finalizer) may still use CUDA.</summary>
    const int CaptureModeThreadLocal = 1;

    [StructLayout(LayoutKind.Sequential)]
    struct CudaStream
    {
        public long Device; // c10::Device (type, index) and padding
        public long Id;     // c10::StreamId
    }

    [StructLayout(LayoutKind.Sequential)]
    struct MempoolId
    {
        public ulong First;
        public ulong Second;
    }

    sealed class Api
    {
        public delegate* unmanaged[Cdecl]<IntPtr, byte, void> CtorBool;
        public delegate* unmanaged[Cdecl]<IntPtr, void> CtorVoid;
        public delegate* unmanaged[Cdecl]<IntPtr, void> Dtor;
        public delegate* unmanaged[Cdecl]<IntPtr, MempoolId, int, void> CaptureBeginMode;
        public delegate* unmanaged[Cdecl]<IntPtr, MempoolId, void> CaptureBegin;
        public delegate* unmanaged[Cdecl]<IntPtr, void> CaptureEnd;
        public delegate* unmanaged[Cdecl]<IntPtr, void> ReplayFn;
        public delegate* unmanaged[Cdecl]<byte, sbyte, CudaStream> StreamFromPoolBool;
        public delegate* unmanaged[Cdecl]<int, sbyte, CudaStream> StreamFromPoolInt;
        public delegate* unmanaged[Cdecl]<sbyte, CudaStream> CurrentStream;
        public delegate* unmanaged[Cdecl]<CudaStream, void> SetCurrentStream;
        public string Description = "";
    }

    static readonly object Gate = new();
    static Api? _api;
    static string? _why;
    static bool _probed;

    IntPtr _self;
    bool _constructed;
    bool _captured;
    readonly sbyte _device;

    /// <summary>Milliseconds the last <see cref="Capture"/> took (warm-up runs included).</summary>
    public double CaptureMilliseconds { get; private set; }

    /// <summary>Which native entry points were bound (for diagnostics).</summary>
    public static string Binding => _api?.Description ?? "";

    /// <summary>
    /// True when CUDA graphs can be used here: libtorch was loaded for CUDA, a GPU is present and
    /// libtorch_cuda / libc10_cuda export the CUDAGraph and stream functions this class calls.
    /// <paramref name="why"/> says what is missing otherwise.
    /// </summary>
    public static bool IsSupported(out string why)
    {
        var api = Resolve(out why);
        return api is not null;
    }

    /// <summary>A new, empty graph for CUDA device <paramref name="deviceIndex"/>.</summary>
    public CudaGraph(int deviceIndex = 0)
    {
        var api = Resolve(out var why) ?? throw new NotSupportedException($"CUDA graphs are not available: {why}");
        _device = (sbyte)deviceIndex;
        _self = (IntPtr)NativeMemory.AlignedAlloc(ObjectBytes, 64);
        NativeMemory.Clear((void*)_self, ObjectBytes);
        if (api.CtorBool != null) api.CtorBool(_self, 0);
        else api.CtorVoid(_self);
        _constructed = true;
    }

    /// <summary>
    /// Runs <paramref name="body"/> <paramref name="warmups"/> times eagerly and then once under stream
    /// capture, all on a side stream from libtorch's pool, and instantiates the graph. The device is
    /// synchronised before and after, so the side stream sees all earlier work and later work sees the
    /// warm-up results. The warm-up runs do change whatever state <paramref name="body"/> updates (the
    /// captured run does not execute its kernels); reset such state before the first replay.
    /// </summary>
    public void Capture(Action body, int warmups = 2)
    {
        ObjectDisposedException.ThrowIf(_self == IntPtr.Zero, this);
        if (_captured) throw new InvalidOperationException("this CUDA graph was already captured; create a new one.");
        var api = _api!;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        torch.cuda.synchronize(new torch.Device(DeviceType.CUDA, _device));
        var previous = api.CurrentStream(_device);
        var side = api.StreamFromPoolBool != null ? api.StreamFromPoolBool(0, _device) : api.StreamFromPoolInt(0, _device);
        api.SetCurrentStream(side);
        try
        {
            for (int i = 0; i < warmups; i++) body();
            torch.cuda.synchronize(new torch.Device(DeviceType.CUDA, _device));
            // Tensors the .NET GC would free in the middle of the capture are freed now instead.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var pool = new MempoolId();
            if (api.CaptureBeginMode != null) api.CaptureBeginMode(_self, pool, CaptureModeThreadLocal);
            else api.CaptureBegin(_self, pool);
            body();
            api.CaptureEnd(_self);
            _captured = true;
        }
        finally
        {
            api.SetCurrentStream(previous);
        }
        torch.cuda.synchronize(new torch.Device(DeviceType.CUDA, _device));
        CaptureMilliseconds = clock.Elapsed.TotalMilliseconds;
    }

    /// <summary>Launches the captured work on the current (default) stream; asynchronous like any kernel.</summary>
    public void Replay()
    {
        ObjectDisposedException.ThrowIf(_self == IntPtr.Zero, this);
        if (!_captured) throw new InvalidOperationException("Replay needs a captured graph (call Capture first).");
        _api!.ReplayFn(_self);
    }

    /// <summary>Destroys the graph and releases its private memory pool (tensors still alive keep their blocks).</summary>
    public void Dispose()
    {
        if (_self == IntPtr.Zero) return;
        if (_constructed)
        {
            torch.cuda.synchronize(new torch.Device(DeviceType.CUDA, _device));
            _api!.Dtor(_self); // ~CUDAGraph() calls reset(): frees the graph, the executable graph and the pool
        }
        NativeMemory.AlignedFree((void*)_self);
        _self = IntPtr.Zero;
        GC.SuppressFinalize(this);
    }

    static Api? Resolve(out string why)
    {
        lock (Gate)
        {
            if (!_probed)
            {
                _probed = true;
                _api = Bind(out _why);
            }
            why = _why ?? "";
            return _api;
        }
    }

    static Api? Bind(out string why)
    {
        var info = TorchRuntime.Current;
        if (info is null || info.CudaDeviceCount == 0)
        {
            why = info is null ? "libtorch is not loaded (call TorchRuntime.Initialize first)" : $"no CUDA device in this process ({info.CudaNote})";
            return null;
        }
        var folder = info.LibTorchPath;
        if (File.Exists(folder)) folder = Path.GetDirectoryName(folder) ?? folder;
        var torchCuda = Path.Combine(folder, "libtorch_cuda.so");
        var c10Cuda = Path.Combine(folder, "libc10_cuda.so");
        if (!NativeLibrary.TryLoad(torchCuda, out var tc) || !NativeLibrary.TryLoad(c10Cuda, out var cc))
        {
            why = $"cannot load {torchCuda} and {c10Cuda}";
            return null;
        }
        IntPtr Find(IntPtr lib, params string[] names)
        {
            foreach (var n in names)
                if (NativeLibrary.TryGetExport(lib, n, out var p)) return p;
            return IntPtr.Zero;
        }
        var api = new Api();
        var missing = new List<string>();
        var ctorB = Find(tc, "_ZN2at4cuda9CUDAGraphC1Eb", "_ZN2at4cuda9CUDAGraphC2Eb");
        var ctorV = Find(tc, "_ZN2at4cuda9CUDAGraphC1Ev", "_ZN2at4cuda9CUDAGraphC2Ev");
        api.CtorBool = (delegate* unmanaged[Cdecl]<IntPtr, byte, void>)ctorB;
        api.CtorVoid = (delegate* unmanaged[Cdecl]<IntPtr, void>)ctorV;
        if (ctorB == IntPtr.Zero && ctorV == IntPtr.Zero) missing.Add("at::cuda::CUDAGraph::CUDAGraph(bool|void)");
        var dtor = Find(tc, "_ZN2at4cuda9CUDAGraphD1Ev", "_ZN2at4cuda9CUDAGraphD2Ev");
        api.Dtor = (delegate* unmanaged[Cdecl]<IntPtr, void>)dtor;
        if (dtor == IntPtr.Zero) missing.Add("~CUDAGraph()");
        var beginMode = Find(tc, "_ZN2at4cuda9CUDAGraph13capture_beginESt4pairIyyE21cudaStreamCaptureMode");
        var begin = Find(tc, "_ZN2at4cuda9CUDAGraph13capture_beginESt4pairIyyE");
        api.CaptureBeginMode = (delegate* unmanaged[Cdecl]<IntPtr, MempoolId, int, void>)beginMode;
        api.CaptureBegin = (delegate* unmanaged[Cdecl]<IntPtr, MempoolId, void>)begin;
        if (beginMode == IntPtr.Zero && begin == IntPtr.Zero) missing.Add("CUDAGraph::capture_begin(std::pair<ull, ull>[, cudaStreamCaptureMode])");
        var end = Find(tc, "_ZN2at4cuda9CUDAGraph11capture_endEv");
        api.CaptureEnd = (delegate* unmanaged[Cdecl]<IntPtr, void>)end;
        if (end == IntPtr.Zero) missing.Add("CUDAGraph::capture_end()");
        var replay = Find(tc, "_ZN2at4cuda9CUDAGraph6replayEv");
        api.ReplayFn = (delegate* unmanaged[Cdecl]<IntPtr, void>)replay;
        if (replay == IntPtr.Zero) missing.Add("CUDAGraph::replay()");
        var poolB = Find(cc, "_ZN3c104cuda17getStreamFromPoolEba");
        var poolI = Find(cc, "_ZN3c104cuda17getStreamFromPoolEia");
        api.StreamFromPoolBool = (delegate* unmanaged[Cdecl]<byte, sbyte, CudaStream>)poolB;
        api.StreamFromPoolInt = (delegate* unmanaged[Cdecl]<int, sbyte, CudaStream>)poolI;
        if (poolB == IntPtr.Zero && poolI == IntPtr.Zero) missing.Add("c10::cuda::getStreamFromPool(bool|int, signed char)");
        var cur = Find(cc, "_ZN3c104cuda20getCurrentCUDAStreamEa");
        api.CurrentStream = (delegate* unmanaged[Cdecl]<sbyte, CudaStream>)cur;
        if (cur == IntPtr.Zero) missing.Add("c10::cuda::getCurrentCUDAStream(signed char)");
        var set = Find(cc, "_ZN3c104cuda20setCurrentCUDAStreamENS0_10CUDAStreamE");
        api.SetCurrentStream = (delegate* unmanaged[Cdecl]<CudaStream, void>)set;
        if (set == IntPtr.Zero) missing.Add("c10::cuda::setCurrentCUDAStream(CUDAStream)");
        if (missing.Count > 0)
        {
            why = $"{folder} lacks exported symbols for: {string.Join("; ", missing)}";
            return null;
        }
        api.Description = $"{folder}: ctor({(ctorB != IntPtr.Zero ? "bool" : "void")}), capture_begin({(beginMode != IntPtr.Zero ? "pool, mode" : "pool")}), getStreamFromPool({(poolB != IntPtr.Zero ? "bool" : "int")}, device)";
        why = "";
        return api;
    }
}
