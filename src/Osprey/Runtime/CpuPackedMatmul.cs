using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// libtorch's CPU weight-packed matrix products, which TorchSharp 0.107 does not expose: <c>x Wᵀ</c> straight from int8
/// codes with one scale per output row (<c>at::_weight_int8pack_mm</c>) and from 4-bit codes with a scale and an offset
/// per group of inputs (<c>at::_weight_int4pack_mm_for_cpu</c>). The products go through libtorch's C shim for
/// ahead-of-time-compiled graphs (<c>aoti_torch_cpu__weight_int8pack_mm</c>, <c>aoti_torch_cpu__weight_int4pack_mm_cpu_tensor</c>),
/// which catches C++ exceptions and hands back a heap <c>at::Tensor*</c>, the very handle TorchSharp keeps. Packing the
/// 4-bit codes has no shim entry, so it calls the operator's mangled <c>call</c>; an <c>at::Tensor</c> return comes back
/// through a hidden result pointer (the first argument), which points here at 8 bytes of malloc'ed memory that
/// TorchSharp later frees with <c>delete</c> (operator delete is free in libstdc++). Its inputs are checked here first,
/// because a C++ exception cannot cross into .NET.
/// </summary>
internal static unsafe class CpuPackedMatmul
{
    sealed class Api
    {
        public delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr, IntPtr*, int> Int8Mm;
        public delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr*, int> Int4Mm;
        public delegate* unmanaged[Cdecl]<IntPtr, IntPtr, long, void> Int4Pack;
        public delegate* unmanaged[Cdecl]<IntPtr, IntPtr> Data;
    }

    static readonly object s_lock = new();
    static Api? s_api;
    static string? s_why;

    /// <summary>Null when the products can be used, else why not (no libtorch loaded, symbols missing, OSPREY_CPU_PACKED=0).</summary>
    public static string? Unavailable()
    {
        Load();
        return s_why;
    }

    static Api? Load()
    {
        lock (s_lock)
        {
            if (s_api is not null || s_why is not null) return s_api;
            if (Environment.GetEnvironmentVariable("OSPREY_CPU_PACKED") == "0") { s_why = "OSPREY_CPU_PACKED=0"; return null; }
            // The very file TorchSharp loaded (a second copy of libtorch in one process would register every operator twice).
            var path = Loaded("/libtorch_cpu.so");
            if (path is null) { s_why = "libtorch_cpu.so is not loaded in this process"; return null; }
            if (!NativeLibrary.TryLoad(path, out var lib)) { s_why = $"cannot load {path}"; return null; }
            // THSTensor_data from the LibTorchSharp TorchSharp loaded: the kernels use aligned vector loads, so inputs are checked.
            var bridge = Loaded("/libLibTorchSharp.so");
            if (bridge is null || !NativeLibrary.TryLoad(bridge, out var sharp) || !NativeLibrary.TryGetExport(sharp, "THSTensor_data", out var data))
            {
                s_why = "libLibTorchSharp.so's THSTensor_data was not found in this process";
                return null;
            }
            if (!NativeLibrary.TryGetExport(lib, "aoti_torch_cpu__weight_int8pack_mm", out var i8)
                || !NativeLibrary.TryGetExport(lib, "aoti_torch_cpu__weight_int4pack_mm_cpu_tensor", out var i4)
                || !NativeLibrary.TryGetExport(lib, "_ZN2at4_ops35_convert_weight_to_int4pack_for_cpu4callERKNS_6TensorEl", out var pack))
            {
                s_why = $"{path} lacks the int8/int4 weight-packed products (libtorch 2.6 or later has them)";
                return null;
            }
            s_api = new Api
            {
                Int8Mm = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr, IntPtr*, int>)i8,
                Int4Mm = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr*, int>)i4,
                Int4Pack = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, long, void>)pack,
                Data = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)data,
            };
            return s_api;
        }
    }

    internal static string? Loaded(string fileName)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                var slash = line.IndexOf('/', StringComparison.Ordinal);
                if (slash >= 0 && line.EndsWith(fileName, StringComparison.Ordinal)) return line[slash..];
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>
    /// <paramref name="t"/> itself when it is contiguous and starts on a 64-byte boundary, else a contiguous copy (libtorch's
    /// CPU allocator aligns to 64 bytes). libtorch's int8 kernel loads with aligned AVX-512 instructions: a tensor over
    /// memory it did not allocate (an array pinned by TorchSharp) faults. Dispose the result only when it is not <paramref name="t"/>.
    /// </summary>
    public static Tensor Aligned(Tensor t)
    {
        var api = Load();
        if (api is not null && t.is_contiguous() && api.Data(t.Handle) % 64 == 0) return t;
        return t.is_contiguous() ? t.clone() : t.contiguous();
    }

    static Tensor? Call(Tensor[] inputs, Func<IntPtr[], Tensor?> call)
    {
        var ready = inputs.Select(Aligned).ToArray();
        try { return call(ready.Select(t => t.Handle).ToArray()); }
        finally
        {
            for (int i = 0; i < ready.Length; i++)
                if (!ReferenceEquals(ready[i], inputs[i])) ready[i].Dispose();
        }
    }

    static bool Floating(ScalarType t) => t is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16;

    /// <summary>
    /// x [M, K] (float32, bfloat16 or float16) times the int8 codes [N, K]ᵀ, each output column times its scale [N] (x's
    /// dtype): y[m, n] = scales[n] Σₖ x[m, k] codes[n, k]. Null when the product is unavailable or libtorch refuses the inputs.
    /// </summary>
    public static Tensor? Int8Mm(Tensor x, Tensor codes, Tensor scales)
    {
        var api = Load();
        if (api is null || x.device_type != DeviceType.CPU || x.dim() != 2 || !Floating(x.dtype) || codes.dtype != ScalarType.Int8
            || codes.dim() != 2 || codes.shape[1] != x.shape[1] || scales.dtype != x.dtype || scales.numel() != codes.shape[0])
            return null;
        return Call([x, codes, scales], h =>
        {
            IntPtr result;
            return api.Int8Mm(h[0], h[1], h[2], &result) != 0 ? null : Tensor.UnsafeCreateTensor(result);
        });
    }

    /// <summary>
    /// Packs 4-bit codes int32 [N, K] (values 0..15; N a multiple of 16, K even) into libtorch's CPU layout (uint8 [N, K/2]).
    /// </summary>
    public static Tensor Int4Pack(Tensor codes)
    {
        var api = Load() ?? throw new InvalidOperationException($"the CPU int4 product is unavailable: {s_why}");
        if (codes.device_type != DeviceType.CPU || codes.dtype != ScalarType.Int32 || codes.dim() != 2 || codes.shape[0] % 16 != 0 || codes.shape[1] % 2 != 0)
            throw new ArgumentException($"int4 packing needs CPU int32 codes [N, K] with N a multiple of 16 and K even, got {codes.dtype} [{string.Join(", ", codes.shape)}] on {codes.device}");
        var contiguous = Aligned(codes);
        var slot = (IntPtr)NativeMemory.Alloc((nuint)IntPtr.Size);
        *(IntPtr*)slot = IntPtr.Zero;
        api.Int4Pack(slot, contiguous.Handle, 1);
        if (!ReferenceEquals(contiguous, codes)) contiguous.Dispose();
        return Tensor.UnsafeCreateTensor(slot);
    }

    /// <summary>
    /// x [M, K] times the packed 4-bit weight [N, K]ᵀ where w[n, k] = (code − 8)·scale + offset of group k / groupSize;
    /// <paramref name="scaleAndOffset"/> is [K / groupSize, N, 2] in x's dtype. Null when unavailable or refused.
    /// </summary>
    public static Tensor? Int4Mm(Tensor x, Tensor packed, long groupSize, Tensor scaleAndOffset)
    {
        var api = Load();
        if (api is null || x.device_type != DeviceType.CPU || x.dim() != 2 || !Floating(x.dtype) || packed.dtype != ScalarType.Byte
            || packed.shape[1] * 2 != x.shape[1] || scaleAndOffset.dtype != x.dtype || scaleAndOffset.dim() != 3
            || scaleAndOffset.shape[0] * groupSize != x.shape[1] || scaleAndOffset.shape[1] != packed.shape[0])
            return null;
        using var group = tensor(groupSize);
        return Call([x, packed, scaleAndOffset], h =>
        {
            IntPtr result;
            return api.Int4Mm(h[0], h[1], group.Handle, h[2], &result) != 0 ? null : Tensor.UnsafeCreateTensor(result);
        });
    }
}
