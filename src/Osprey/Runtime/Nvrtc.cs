using System.Runtime.InteropServices;
using System.Text;

namespace Osprey.Runtime;

/// <summary>
/// CUDA C++ compiled at run time with NVRTC. No CUDA toolkit is needed: the NVRTC library comes with the PyTorch install
/// whose libtorch Osprey loads (the nvidia-cuda-nvrtc wheel beside torch, or a CUDA toolkit when present). Produces a
/// cubin for the device's exact architecture, so the driver never JIT-compiles PTX (a driver older than the NVRTC would
/// refuse newer PTX).
/// </summary>
internal static unsafe class Nvrtc
{
    delegate int CreateProgram(out IntPtr program, string source, string name, int headers, IntPtr headerSources, IntPtr headerNames);
    delegate int CompileProgram(IntPtr program, int count, IntPtr[] options);
    delegate int GetSize(IntPtr program, out nuint size);
    delegate int GetBytes(IntPtr program, byte[] buffer);
    delegate int DestroyProgram(ref IntPtr program);

    static readonly object Gate = new();
    static IntPtr _lib;
    static string? _why;
    static bool _probed;

    /// <summary>The NVRTC library found, or why none was.</summary>
    public static bool TryLoad(out string where)
    {
        lock (Gate)
        {
            if (!_probed)
            {
                _probed = true;
                foreach (var candidate in Candidates())
                    if (NativeLibrary.TryLoad(candidate, out _lib)) { _why = candidate; break; }
                _why ??= "no libnvrtc.so found beside libtorch (" + (TorchRuntime.Current?.LibTorchPath ?? "not loaded") + "), in its nvidia/cuda_nvrtc wheel or in /usr/local/cuda";
            }
            where = _why!;
            return _lib != IntPtr.Zero;
        }
    }

    static IEnumerable<string> Candidates()
    {
        var torchLib = TorchRuntime.Current?.LibTorchPath;
        if (torchLib is not null && File.Exists(torchLib)) torchLib = Path.GetDirectoryName(torchLib);
        var folders = new List<string>();
        if (torchLib is not null)
        {
            folders.Add(torchLib);
            // site-packages/torch/lib → site-packages/nvidia/cuda_nvrtc/lib
            folders.Add(Path.GetFullPath(Path.Combine(torchLib, "..", "..", "nvidia", "cuda_nvrtc", "lib")));
        }
        folders.Add("/usr/local/cuda/lib64");
        foreach (var folder in folders.Where(Directory.Exists))
            foreach (var file in Directory.GetFiles(folder, "libnvrtc*.so*").Where(f => !f.Contains("builtins", StringComparison.Ordinal)).Order())
                yield return file;
        yield return "libnvrtc.so.12";
        yield return "libnvrtc.so";
    }

    static T Fn<T>(string name) where T : Delegate =>
        Marshal.GetDelegateForFunctionPointer<T>(NativeLibrary.GetExport(_lib, name));

    /// <summary>Compiles <paramref name="source"/> for sm_<paramref name="major"/><paramref name="minor"/> and returns the cubin.</summary>
    public static byte[] CompileCubin(string source, string name, int major, int minor, IEnumerable<string> extraOptions)
    {
        if (!TryLoad(out var where)) throw new OspreyException($"NVRTC is not available: {where}.");
        Check(Fn<CreateProgram>("nvrtcCreateProgram")(out var program, source, name, 0, IntPtr.Zero, IntPtr.Zero), "nvrtcCreateProgram", IntPtr.Zero);
        var options = new[] { $"--gpu-architecture=sm_{major}{minor}", "--std=c++17" }.Concat(extraOptions).ToArray();
        var pointers = options.Select(o => Marshal.StringToHGlobalAnsi(o)).ToArray();
        try
        {
            Check(Fn<CompileProgram>("nvrtcCompileProgram")(program, pointers.Length, pointers), "nvrtcCompileProgram", program);
            Check(Fn<GetSize>("nvrtcGetCUBINSize")(program, out var size), "nvrtcGetCUBINSize", program);
            var cubin = new byte[(int)size];
            Check(Fn<GetBytes>("nvrtcGetCUBIN")(program, cubin), "nvrtcGetCUBIN", program);
            return cubin;
        }
        finally
        {
            foreach (var p in pointers) Marshal.FreeHGlobal(p);
            Fn<DestroyProgram>("nvrtcDestroyProgram")(ref program);
        }
    }

    static void Check(int status, string what, IntPtr program)
    {
        if (status == 0) return;
        var log = "";
        if (program != IntPtr.Zero && Fn<GetSize>("nvrtcGetProgramLogSize")(program, out var n) == 0 && n > 1)
        {
            var buffer = new byte[(int)n];
            if (Fn<GetBytes>("nvrtcGetProgramLog")(program, buffer) == 0) log = Encoding.UTF8.GetString(buffer).TrimEnd('\0');
        }
        throw new OspreyException($"{what} failed with NVRTC status {status}{(log.Length > 0 ? ": " + log : ".")}");
    }
}
