using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Osprey.Runtime;

/// <summary>
/// Loads libtorch once per process and picks the device. On the CPU it uses the libtorch that ships
/// beside the executable (the libtorch-cpu-linux-x64 package). For CUDA it loads the libtorch of an
/// installed PyTorch (found through <c>python3</c>) or of the folder named by <c>OSPREY_LIBTORCH</c>:
/// preloading those libraries by full path makes TorchSharp's own by-name loads resolve to them.
/// </summary>
public static class TorchRuntime
{
    /// <summary>Environment variable naming a libtorch lib folder (with libtorch_cuda.so for GPUs).</summary>
    public const string LibTorchVariable = "OSPREY_LIBTORCH";

    const string NotRequested = "not requested";
    static readonly object Gate = new();
    static RuntimeInfo? _info;

    /// <summary>True when libtorch's cuDNN attention was switched off (CUDA only; see CudnnAttention).</summary>
    public static bool CudnnAttentionDisabled => CudnnAttention.Disabled;

    /// <summary>What was loaded, once <see cref="Initialize"/> has run; null before.</summary>
    public static RuntimeInfo? Current => _info;

    /// <summary>
    /// Loads libtorch for the requested device (once; later calls must agree on CPU vs CUDA) and returns
    /// the device to run on. With <c>auto</c>, a missing CUDA libtorch or GPU falls back to the CPU and
    /// writes a one-line notice to <paramref name="notice"/> (stderr by default).
    /// </summary>
    public static RuntimeInfo Initialize(DeviceSpec? spec = null, TextWriter? notice = null)
    {
        spec ??= DeviceSpec.Auto;
        lock (Gate)
        {
            if (_info is null)
                _info = Load(spec, notice ?? Console.Error);
            return _info with { Device = PickDevice(_info, spec) };
        }
    }

    static torch.Device PickDevice(RuntimeInfo info, DeviceSpec spec)
    {
        switch (spec.Kind)
        {
            case DeviceKind.Cpu:
                return torch.CPU;
            case DeviceKind.Cuda:
                if (info.CudaDeviceCount == 0 && info.CudaNote == NotRequested)
                    throw new OspreyException($"--device {spec} was asked for after libtorch was loaded for the CPU in this process; choose the device before the first model is loaded.");
                if (info.CudaDeviceCount == 0)
                    throw new OspreyException($"--device {spec} was asked for but no CUDA GPU is usable ({info.CudaNote}); use --device cpu or install PyTorch with CUDA (or set {LibTorchVariable}).");
                if (spec.Index >= info.CudaDeviceCount)
                    throw new OspreyException($"--device {spec} does not exist: this machine has {info.CudaDeviceCount} CUDA device(s), cuda:0 to cuda:{info.CudaDeviceCount - 1}.");
                return new torch.Device(DeviceType.CUDA, spec.Index);
            default:
                // auto's index is 0 unless a distributed worker asked for its LOCAL_RANK's GPU.
                return info.CudaDeviceCount > 0 ? new torch.Device(DeviceType.CUDA, spec.Index % info.CudaDeviceCount) : torch.CPU;
        }
    }

    static RuntimeInfo Load(DeviceSpec spec, TextWriter notice)
    {
        string? cudaNote = null;
        string? folder = null;
        if (spec.Kind != DeviceKind.Cpu)
        {
            folder = FindCudaLibTorch(out cudaNote);
            if (folder is not null)
            {
                try
                {
                    Preload(folder);
                    torch.InitializeDeviceType(DeviceType.CUDA);
                    var count = torch.cuda.is_available() ? torch.cuda.device_count() : 0;
                    if (count > 0)
                    {
                        CudnnAttention.Disable(folder);
                        // Diagnostic switch: with the math fallback off, libtorch reports why the fused
                        // attention kernels refused an input instead of silently running the slow path.
                        if (Environment.GetEnvironmentVariable("OSPREY_SDPA_NO_MATH") == "1")
                            torch.backends.cuda.enable_math_sdp(false);
                        return new RuntimeInfo(torch.CPU, folder, ReadTorchVersion(folder), count, "found");
                    }
                    cudaNote = $"libtorch in {folder} sees no CUDA device";
                    // libtorch_cuda's CPU half works on the CPU too; we stay on this libtorch.
                    if (spec.Kind == DeviceKind.Auto) notice.WriteLine($"osprey: no CUDA device usable ({cudaNote}); running on the CPU.");
                    return new RuntimeInfo(torch.CPU, folder, ReadTorchVersion(folder), 0, cudaNote);
                }
                catch (Exception e) when (e is DllNotFoundException or NotSupportedException or TypeInitializationException or EntryPointNotFoundException)
                {
                    cudaNote = $"loading the CUDA libtorch in {folder} failed: {FirstLine(e.Message)}";
                    if (spec.Kind == DeviceKind.Cuda)
                        throw new OspreyException($"--device {spec}: {cudaNote}; point {LibTorchVariable} at a working libtorch lib folder or use --device cpu.", e);
                }
            }
            if (spec.Kind == DeviceKind.Auto)
                notice.WriteLine($"osprey: no CUDA libtorch found ({cudaNote}); running on the CPU.");
        }

        var bundled = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        var bundledCpu = NativeFolders(bundled).FirstOrDefault(f => File.Exists(Path.Combine(f, "libtorch_cpu.so")));
        if (bundledCpu is null)
        {
            // A build without the CPU libtorch package (GPU machines): run the CPU on PyTorch's libtorch.
            var external = CpuLibTorch();
            if (external is not null)
            {
                Preload(external);
                torch.InitializeDeviceType(DeviceType.CPU);
                return new RuntimeInfo(torch.CPU, external, ReadTorchVersion(external), 0, cudaNote ?? NotRequested);
            }
        }
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e) when (e is DllNotFoundException or NotSupportedException or TypeInitializationException)
        {
            throw new OspreyException(LoadFailure(bundled), e);
        }
        return new RuntimeInfo(torch.CPU, bundledCpu ?? bundled, bundledCpu is null ? "unknown" : BundledLibTorchVersion, 0, cudaNote ?? NotRequested);
    }

    /// <summary>
    /// Where the native files of the app's packages lie: beside the assemblies for a RuntimeIdentifier-specific build
    /// (the osprey CLI), under runtimes/linux-x64/native/ for a portable one (a plain `dotnet new console` app).
    /// </summary>
    static string[] NativeFolders(string bundled) => [bundled, Path.Combine(bundled, "runtimes", "linux-x64", "native")];

    const string GlibcxxNeed = "GLIBCXX_3.4.32";

    /// <summary>
    /// Says why TorchSharp could not load libtorch. TorchSharp's own message blames a missing libtorch package even when
    /// the files are there and the system loader refused them, so ask the loader directly for the real reason.
    /// </summary>
    static string LoadFailure(string bundled)
    {
        var folders = NativeFolders(bundled);
        var bridge = folders.Select(f => Path.Combine(f, "libLibTorchSharp.so")).FirstOrDefault(File.Exists);
        var cpu = folders.Select(f => Path.Combine(f, "libtorch_cpu.so")).FirstOrDefault(File.Exists);
        if (bridge is null || cpu is null)
            return $"libtorch could not be loaded: {(bridge is null ? "libLibTorchSharp.so" : "libtorch_cpu.so")} is not in {bundled} (nor its runtimes/linux-x64/native); "
                + $"reference the Osprey NuGet package, which brings the CPU libtorch (libtorch-cpu-linux-x64), and do not build with OspreyCpuLibTorch=false, "
                + $"or set {LibTorchVariable} to the lib folder of a PyTorch install.";
        string reason;
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(bridge));
            reason = "TorchSharp could not initialise it";
        }
        catch (DllNotFoundException e)
        {
            // .NET's message is a generic first line followed by the loader's own (dlerror) line.
            reason = e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? e.Message;
        }
        if (reason.Contains(GlibcxxNeed, StringComparison.Ordinal))
            return $"libtorch could not be loaded: {bridge} needs {GlibcxxNeed} (GCC 13's libstdc++), which this system's libstdc++ lacks (Debian 12, Ubuntu 22.04); "
                + "the Osprey NuGet package's build step (build/Osprey.targets) marks that need weak in the build and publish output, so reference the Osprey package "
                + "(not only TorchSharp) and rebuild, or install libstdc++ from GCC 13 or newer.";
        return $"libtorch could not be loaded from {Path.GetDirectoryName(bridge)}: {reason}; "
            + $"reinstall the Osprey package's native files (delete bin/ and obj/, rebuild), or set {LibTorchVariable} to the lib folder of a PyTorch install.";
    }

    /// <summary>The libtorch version of the CPU package Osprey is built against.</summary>
    public const string BundledLibTorchVersion = "2.10.0 (cpu)";

    /// <summary>
    /// Finds a folder holding libtorch_cuda.so: <c>OSPREY_LIBTORCH</c> first, then the lib folder of the
    /// torch package that <c>python3</c> imports (located without importing it, which takes seconds).
    /// </summary>
    public static string? FindCudaLibTorch(out string note)
    {
        var env = Environment.GetEnvironmentVariable(LibTorchVariable);
        if (!string.IsNullOrWhiteSpace(env))
        {
            var dir = Directory.Exists(Path.Combine(env, "lib")) && !File.Exists(Path.Combine(env, "libtorch_cuda.so")) ? Path.Combine(env, "lib") : env;
            if (File.Exists(Path.Combine(dir, "libtorch_cuda.so")))
            {
                note = $"{LibTorchVariable}={env}";
                return dir;
            }
            note = $"{LibTorchVariable}={env} has no libtorch_cuda.so";
            return null;
        }
        var fromPython = PythonTorchLib();
        if (fromPython is null)
        {
            note = "no python3 with torch";
            return null;
        }
        if (File.Exists(Path.Combine(fromPython, "libtorch_cuda.so")))
        {
            note = $"PyTorch at {fromPython}";
            return fromPython;
        }
        note = $"PyTorch at {fromPython} is CPU-only";
        return null;
    }

    static string? CpuLibTorch()
    {
        var env = Environment.GetEnvironmentVariable(LibTorchVariable);
        foreach (var dir in new[] { env, env is null ? null : Path.Combine(env, "lib"), PythonTorchLib() })
            if (!string.IsNullOrWhiteSpace(dir) && File.Exists(Path.Combine(dir, "libtorch_cpu.so"))) return dir;
        return null;
    }

    static string? PythonTorchLib()
    {
        const string script = "import importlib.util,os;s=importlib.util.find_spec('torch');print(os.path.join(os.path.dirname(s.origin),'lib') if s and s.origin else '')";
        foreach (var python in new[] { "python3", "python" })
        {
            try
            {
                var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                psi.ArgumentList.Add("-c");
                psi.ArgumentList.Add(script);
                using var p = Process.Start(psi);
                if (p is null) continue;
                var output = p.StandardOutput.ReadToEnd().Trim();
                if (!p.WaitForExit(20_000)) { p.Kill(); continue; }
                if (p.ExitCode == 0 && output.Length > 0 && Directory.Exists(output)) return output;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // That interpreter is not installed; try the next name.
            }
        }
        return null;
    }

    static void Preload(string folder)
    {
        // Order matters only for clarity: each library's own RUNPATH finds its dependencies in the same
        // folder (and PyTorch's nvidia/* wheels). Once loaded, the dynamic loader matches later by-name
        // requests (TorchSharp's "torch_cuda", libLibTorchSharp's DT_NEEDED) by SONAME.
        foreach (var name in new[] { "libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so" })
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path)) NativeLibrary.Load(path);
        }
    }

    static string ReadTorchVersion(string libFolder)
    {
        // PyTorch keeps its version in torch/version.py beside lib/.
        var versionPy = Path.Combine(Path.GetDirectoryName(libFolder.TrimEnd('/')) ?? libFolder, "version.py");
        try
        {
            if (File.Exists(versionPy))
                foreach (var line in File.ReadLines(versionPy))
                    if (line.StartsWith("__version__", StringComparison.Ordinal))
                        return line.Split('=', 2)[1].Trim().Trim('\'', '"');
        }
        catch (IOException)
        {
            // Unreadable version file: report unknown below.
        }
        return "unknown";
    }

    static string FirstLine(string s)
    {
        var i = s.IndexOf('\n');
        return (i < 0 ? s : s[..i]).Trim();
    }

    /// <summary>Osprey's own version (the assembly's informational version).</summary>
    public static string OspreyVersion =>
        typeof(TorchRuntime).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0] ?? "0.0.0";
}
