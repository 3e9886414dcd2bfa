using System.Runtime.InteropServices;
using System.Text;

namespace Osprey.Runtime;

/// <summary>
/// GPU names and memory through NVML (libnvidia-ml.so.1, part of the NVIDIA driver). TorchSharp exposes
/// neither device properties nor memory statistics, and NVML works without touching libtorch.
/// </summary>
public static class Nvml
{
    const string Lib = "libnvidia-ml.so.1";

    [StructLayout(LayoutKind.Sequential)]
    struct Memory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    /// <summary>nvmlUtilization_t: percent of the last sample period a kernel ran, and memory was read or written.</summary>
    [StructLayout(LayoutKind.Sequential)]
    struct Utilization
    {
        public uint Gpu;
        public uint Memory;
    }

    [DllImport(Lib, EntryPoint = "nvmlInit_v2")] static extern int Init();
    [DllImport(Lib, EntryPoint = "nvmlDeviceGetCount_v2")] static extern int GetCount(out uint count);
    [DllImport(Lib, EntryPoint = "nvmlDeviceGetHandleByIndex_v2")] static extern int GetHandle(uint index, out IntPtr device);
    [DllImport(Lib, EntryPoint = "nvmlDeviceGetName")] static extern int GetName(IntPtr device, byte[] name, uint length);
    [DllImport(Lib, EntryPoint = "nvmlDeviceGetMemoryInfo")] static extern int GetMemory(IntPtr device, out Memory memory);

    [DllImport(Lib, EntryPoint = "nvmlDeviceGetUtilizationRates")] static extern int GetUtilization(IntPtr device, out Utilization utilization);

    static bool? _ok;

    static bool Ready()
    {
        if (_ok is bool ok) return ok;
        try { _ok = Init() == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _ok = false; }
        return _ok.Value;
    }

    /// <summary>The GPUs the driver sees (empty without an NVIDIA driver).</summary>
    public static IReadOnlyList<GpuInfo> Devices()
    {
        var list = new List<GpuInfo>();
        if (!Ready() || GetCount(out var n) != 0) return list;
        for (uint i = 0; i < n; i++)
        {
            if (GetHandle(i, out var h) != 0) continue;
            var buf = new byte[96];
            var name = GetName(h, buf, (uint)buf.Length) == 0 ? Encoding.ASCII.GetString(buf).TrimEnd('\0') : "unknown";
            GetMemory(h, out var mem);
            list.Add(new GpuInfo((int)i, name, (long)mem.Total, (long)mem.Used));
        }
        return list;
    }

    /// <summary>Bytes in use on GPU <paramref name="index"/> (all processes), or -1 when unknown.</summary>
    public static long UsedBytes(int index)
    {
        if (!Ready() || GetHandle((uint)index, out var h) != 0 || GetMemory(h, out var mem) != 0) return -1;
        return (long)mem.Used;
    }

    /// <summary>Free bytes on GPU <paramref name="index"/> (NVML's physical numbering), or -1 when unknown.</summary>
    public static long FreeBytes(int index)
    {
        if (!Ready() || GetHandle((uint)index, out var h) != 0 || GetMemory(h, out var mem) != 0) return -1;
        return (long)mem.Free;
    }

    /// <summary>
    /// Percent of the last sample period (1/6 s to 1 s, by product) in which a kernel ran on GPU
    /// <paramref name="index"/>, or -1 when unknown (no driver, or a GPU that does not report it).
    /// </summary>
    public static int UtilizationPercent(int index)
    {
        if (!Ready() || GetHandle((uint)index, out var h) != 0) return -1;
        try
        {
            return GetUtilization(h, out var busy) == 0 ? (int)busy.Gpu : -1;
        }
        catch (EntryPointNotFoundException)
        {
            return -1;
        }
    }
}
