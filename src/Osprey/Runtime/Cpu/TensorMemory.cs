using System.Runtime.InteropServices;
using TorchSharp;

namespace Osprey.Runtime.Cpu;

/// <summary>
/// The address of a CPU tensor's first element, through THSTensor_data of the LibTorchSharp this process loaded
/// (TorchSharp 0.107 has no data_ptr). The managed CPU decoder reads weights and writes the KV cache in place with it.
/// </summary>
internal static unsafe class TensorMemory
{
    static readonly object s_lock = new();
    static delegate* unmanaged[Cdecl]<IntPtr, IntPtr> s_data;
    static string? s_why;
    static bool s_loaded;

    /// <summary>Why addresses cannot be had in this process, or null when they can.</summary>
    public static string? Unavailable()
    {
        Load();
        return s_why;
    }

    static void Load()
    {
        lock (s_lock)
        {
            if (s_loaded) return;
            s_loaded = true;
            var bridge = CpuPackedMatmul.Loaded("/libLibTorchSharp.so");
            if (bridge is null || !NativeLibrary.TryLoad(bridge, out var lib) || !NativeLibrary.TryGetExport(lib, "THSTensor_data", out var data))
            {
                s_why = "libLibTorchSharp.so's THSTensor_data was not found in this process";
                return;
            }
            s_data = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)data;
        }
    }

    /// <summary>The first element of contiguous CPU tensor <paramref name="t"/> (the caller keeps it alive while it uses the address).</summary>
    public static void* Address(torch.Tensor t)
    {
        Load();
        if (s_why is not null) throw new InvalidOperationException(s_why);
        if (t.device_type != DeviceType.CPU || !t.is_contiguous()) throw new ArgumentException("the tensor must be a contiguous CPU tensor", nameof(t));
        return (void*)s_data(t.Handle);
    }
}
