using System.Runtime.InteropServices;

namespace Osprey.Runtime;

/// <summary>
/// Turns libtorch's cuDNN attention backend off. libtorch 2.11 prefers it on Hopper, and it builds a new
/// execution plan for every new (query, key) length: a decode loop whose KV length grows each step pays
/// ≈45 ms per step. TorchSharp has switches only for flash and math attention, so we call
/// <c>at::Context::setSDPUseCuDNN(bool)</c> on <c>at::globalContext()</c> through their exported symbols.
/// </summary>
internal static class CudnnAttention
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate IntPtr GlobalContext();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate void SetFlag(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);

    /// <summary>True when the switch was found and flipped.</summary>
    public static bool Disabled { get; private set; }

    public static void Disable(string libFolder)
    {
        var path = Path.Combine(libFolder, "libtorch_cpu.so");
        if (!File.Exists(path) || !NativeLibrary.TryLoad(path, out var lib)) return;
        if (!NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var getCtx)) return;
        if (!NativeLibrary.TryGetExport(lib, "_ZN2at7Context14setSDPUseCuDNNEb", out var set)) return;
        var ctx = Marshal.GetDelegateForFunctionPointer<GlobalContext>(getCtx)();
        Marshal.GetDelegateForFunctionPointer<SetFlag>(set)(ctx, false);
        Disabled = true;
    }
}
