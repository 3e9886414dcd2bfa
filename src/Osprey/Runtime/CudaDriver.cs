using System.Runtime.InteropServices;

namespace Osprey.Runtime;

/// <summary>
/// The few CUDA driver API calls (libcuda.so.1, part of the NVIDIA driver) needed to load a compiled kernel image and
/// launch it on libtorch's current stream. libtorch owns the device and its primary context; this only borrows them.
/// </summary>
internal static unsafe class CudaDriver
{
    const string Lib = "libcuda.so.1";

    [DllImport(Lib, EntryPoint = "cuInit")] static extern int Init(uint flags);
    [DllImport(Lib, EntryPoint = "cuDeviceGet")] static extern int DeviceGet(out int device, int ordinal);
    [DllImport(Lib, EntryPoint = "cuDeviceGetAttribute")] static extern int DeviceGetAttribute(out int value, int attribute, int device);
    [DllImport(Lib, EntryPoint = "cuCtxGetCurrent")] static extern int CtxGetCurrent(out IntPtr context);
    [DllImport(Lib, EntryPoint = "cuCtxSetCurrent")] static extern int CtxSetCurrent(IntPtr context);
    [DllImport(Lib, EntryPoint = "cuDevicePrimaryCtxRetain")] static extern int PrimaryCtxRetain(out IntPtr context, int device);
    [DllImport(Lib, EntryPoint = "cuModuleLoadData")] static extern int ModuleLoadData(out IntPtr module, byte* image);
    [DllImport(Lib, EntryPoint = "cuModuleGetFunction")] static extern int ModuleGetFunction(out IntPtr function, IntPtr module, string name);
    [DllImport(Lib, EntryPoint = "cuLaunchKernel")]
    static extern int LaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedBytes, IntPtr stream, void** parameters, void** extra);
    [DllImport(Lib, EntryPoint = "cuGetErrorName")] static extern int GetErrorName(int error, out IntPtr name);
    [DllImport(Lib, EntryPoint = "cuStreamCreate")] static extern int StreamCreate(out IntPtr stream, uint flags);
    [DllImport(Lib, EntryPoint = "cuStreamDestroy_v2")] static extern int StreamDestroy(IntPtr stream);
    [DllImport(Lib, EntryPoint = "cuEventCreate")] static extern int EventCreate(out IntPtr evt, uint flags);
    [DllImport(Lib, EntryPoint = "cuEventDestroy_v2")] static extern int EventDestroy(IntPtr evt);
    [DllImport(Lib, EntryPoint = "cuEventRecord")] static extern int EventRecord(IntPtr evt, IntPtr stream);
    [DllImport(Lib, EntryPoint = "cuEventSynchronize")] static extern int EventSynchronize(IntPtr evt);
    [DllImport(Lib, EntryPoint = "cuStreamWaitEvent")] static extern int StreamWaitEvent(IntPtr stream, IntPtr evt, uint flags);

    const uint StreamNonBlocking = 1; // CU_STREAM_NON_BLOCKING: no implicit sync with the legacy default stream
    const uint EventDisableTiming = 2; // CU_EVENT_DISABLE_TIMING: the cheapest event, for ordering only

    const int AttributeComputeCapabilityMajor = 75;
    const int AttributeComputeCapabilityMinor = 76;

    static void Check(int status, string what)
    {
        if (status == 0) return;
        var name = GetErrorName(status, out var p) == 0 && p != IntPtr.Zero ? Marshal.PtrToStringAnsi(p) : null;
        throw new OspreyException($"CUDA driver call {what} failed with {name ?? status.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
    }

    /// <summary>(major, minor) compute capability of device <paramref name="ordinal"/>.</summary>
    public static (int Major, int Minor) ComputeCapability(int ordinal)
    {
        Check(Init(0), "cuInit");
        Check(DeviceGet(out var device, ordinal), "cuDeviceGet");
        Check(DeviceGetAttribute(out var major, AttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
        Check(DeviceGetAttribute(out var minor, AttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
        return (major, minor);
    }

    /// <summary>
    /// Makes device <paramref name="ordinal"/>'s primary context (the one libtorch's runtime calls use) current on this
    /// thread when no context is: a thread that never called the runtime has none.
    /// </summary>
    public static void EnsureContext(int ordinal)
    {
        Check(CtxGetCurrent(out var current), "cuCtxGetCurrent");
        if (current != IntPtr.Zero) return;
        Check(Init(0), "cuInit");
        Check(DeviceGet(out var device, ordinal), "cuDeviceGet");
        Check(PrimaryCtxRetain(out var primary, device), "cuDevicePrimaryCtxRetain");
        Check(CtxSetCurrent(primary), "cuCtxSetCurrent");
    }

    /// <summary>
    /// Makes device <paramref name="ordinal"/>'s primary context current on this thread whatever was current before:
    /// libraries such as NCCL act on the runtime's current device, which libtorch's device guards leave unchanged.
    /// </summary>
    public static void MakeCurrent(int ordinal)
    {
        Check(Init(0), "cuInit");
        Check(DeviceGet(out var device, ordinal), "cuDeviceGet");
        Check(PrimaryCtxRetain(out var primary, device), "cuDevicePrimaryCtxRetain");
        Check(CtxSetCurrent(primary), "cuCtxSetCurrent");
    }

    /// <summary>Loads a cubin image into the current context and returns the named kernels.</summary>
    public static IReadOnlyDictionary<string, IntPtr> Load(byte[] image, IEnumerable<string> names)
    {
        IntPtr module;
        fixed (byte* p = image) Check(ModuleLoadData(out module, p), "cuModuleLoadData");
        var functions = new Dictionary<string, IntPtr>();
        foreach (var name in names)
        {
            Check(ModuleGetFunction(out var f, module, name), $"cuModuleGetFunction({name})");
            functions[name] = f;
        }
        return functions;
    }

    /// <summary>Launches <paramref name="function"/> with its arguments given as pointers to their values.</summary>
    public static void Launch(IntPtr function, (uint X, uint Y) grid, uint block, IntPtr stream, void** parameters, string what) =>
        Check(LaunchKernel(function, grid.X, grid.Y, 1, block, 1, 1, 0, stream, parameters, null), $"cuLaunchKernel({what})");

    /// <summary>A new stream in the current context that does not synchronise with the legacy default stream.</summary>
    public static IntPtr CreateStream()
    {
        Check(StreamCreate(out var stream, StreamNonBlocking), "cuStreamCreate");
        return stream;
    }

    /// <summary>Destroys a stream made by <see cref="CreateStream"/> (work already queued on it still completes).</summary>
    public static void DestroyStream(IntPtr stream) => Check(StreamDestroy(stream), "cuStreamDestroy");

    /// <summary>Records a new event on <paramref name="stream"/>: it completes when the work queued there so far has.</summary>
    public static IntPtr Record(IntPtr stream)
    {
        Check(EventCreate(out var evt, EventDisableTiming), "cuEventCreate");
        Check(EventRecord(evt, stream), "cuEventRecord");
        return evt;
    }

    /// <summary>Work queued on <paramref name="stream"/> from now on starts after <paramref name="evt"/> completes (no host wait).</summary>
    public static void Wait(IntPtr stream, IntPtr evt) => Check(StreamWaitEvent(stream, evt, 0), "cuStreamWaitEvent");

    /// <summary>Blocks this thread until <paramref name="evt"/> completes (the work queued before it, not after it).</summary>
    public static void Synchronize(IntPtr evt) => Check(EventSynchronize(evt), "cuEventSynchronize");

    /// <summary>Frees an event (safe while a stream still waits on it: the driver releases it once it completes).</summary>
    public static void DestroyEvent(IntPtr evt) => Check(EventDestroy(evt), "cuEventDestroy");
}
