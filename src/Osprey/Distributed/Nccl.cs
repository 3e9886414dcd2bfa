using System.Runtime.InteropServices;
using Osprey.Runtime;

namespace Osprey.Distributed;

/// <summary>
/// NCCL's C API, bound from the libnccl.so.2 that the PyTorch install ships (site-packages/nvidia/nccl/lib, the
/// nvidia-nccl wheel its libtorch_cuda links), found as <see cref="Nvrtc"/> finds NVRTC. Only what data-parallel and
/// sharded training use: unique id, communicator init/destroy, all-reduce, reduce-scatter, all-gather, broadcast and
/// group calls. Every call returns an ncclResult_t, turned into an <see cref="OspreyException"/> with NCCL's message.
/// </summary>
internal static unsafe class Nccl
{
    /// <summary>ncclUniqueId: 128 opaque bytes rank 0 makes and every rank passes to ncclCommInitRank.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        public fixed byte Internal[128];
    }

    /// <summary>ncclDataType_t values (nccl.h).</summary>
    public enum DataType
    {
        Int8 = 0, Uint8 = 1, Int32 = 2, Uint32 = 3, Int64 = 4, Uint64 = 5, Float16 = 6, Float32 = 7, Float64 = 8, Bfloat16 = 9,
    }

    /// <summary>ncclRedOp_t's sum.</summary>
    public const int Sum = 0;

    static IntPtr _lib;
    static string? _where;
    static readonly object Gate = new();

    static delegate* unmanaged[Cdecl]<UniqueId*, int> _getUniqueId;
    static delegate* unmanaged[Cdecl]<IntPtr*, int, UniqueId, int, int> _commInitRank;
    static delegate* unmanaged[Cdecl]<IntPtr, int> _commDestroy;
    static delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    static delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _reduceScatter;
    static delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int> _allGather;
    static delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _broadcast;
    static delegate* unmanaged[Cdecl]<int> _groupStart;
    static delegate* unmanaged[Cdecl]<int> _groupEnd;
    static delegate* unmanaged[Cdecl]<int, IntPtr> _errorString;
    static delegate* unmanaged[Cdecl]<int*, int> _version;

    /// <summary>Loads and binds NCCL; <paramref name="where"/> is the file, or why none was found.</summary>
    public static bool TryLoad(out string where)
    {
        lock (Gate)
        {
            if (_where is null)
            {
                foreach (var candidate in Candidates())
                {
                    if (!NativeLibrary.TryLoad(candidate, out var lib)) continue;
                    if (!NativeLibrary.TryGetExport(lib, "ncclCommInitRank", out _)) continue;
                    _lib = lib;
                    _where = candidate;
                    break;
                }
                if (_lib != IntPtr.Zero)
                {
                    _getUniqueId = (delegate* unmanaged[Cdecl]<UniqueId*, int>)Export("ncclGetUniqueId");
                    _commInitRank = (delegate* unmanaged[Cdecl]<IntPtr*, int, UniqueId, int, int>)Export("ncclCommInitRank");
                    _commDestroy = (delegate* unmanaged[Cdecl]<IntPtr, int>)Export("ncclCommDestroy");
                    _allReduce = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
                    _reduceScatter = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclReduceScatter");
                    _allGather = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Export("ncclAllGather");
                    _broadcast = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclBroadcast");
                    _groupStart = (delegate* unmanaged[Cdecl]<int>)Export("ncclGroupStart");
                    _groupEnd = (delegate* unmanaged[Cdecl]<int>)Export("ncclGroupEnd");
                    _errorString = (delegate* unmanaged[Cdecl]<int, IntPtr>)Export("ncclGetErrorString");
                    _version = (delegate* unmanaged[Cdecl]<int*, int>)Export("ncclGetVersion");
                }
                else
                {
                    _where = "no libnccl.so.2 found beside libtorch (" + (TorchRuntime.Current?.LibTorchPath ?? "not loaded") + ") or in its nvidia/nccl wheel; pip install nvidia-nccl-cu12 into that Python";
                }
            }
            where = _where!;
            return _lib != IntPtr.Zero;
        }
    }

    static IntPtr Export(string name) => NativeLibrary.GetExport(_lib, name);

    static IEnumerable<string> Candidates()
    {
        var torchLib = TorchRuntime.Current?.LibTorchPath;
        if (torchLib is not null && File.Exists(torchLib)) torchLib = Path.GetDirectoryName(torchLib);
        if (torchLib is not null)
        {
            // site-packages/torch/lib → site-packages/nvidia/nccl/lib
            foreach (var folder in new[] { Path.GetFullPath(Path.Combine(torchLib, "..", "..", "nvidia", "nccl", "lib")), torchLib }.Where(Directory.Exists))
                foreach (var file in Directory.GetFiles(folder, "libnccl.so*").Order(StringComparer.Ordinal))
                    yield return file;
        }
        // Already loaded by libtorch_cuda, or on the loader's path.
        yield return "libnccl.so.2";
    }

    /// <summary>NCCL's version as MAJOR.MINOR.PATCH.</summary>
    public static string Version()
    {
        int v;
        Check(_version(&v), "ncclGetVersion");
        // NCCL ≥ 2.9 encodes major*10000 + minor*100 + patch.
        return $"{v / 10000}.{v / 100 % 100}.{v % 100}";
    }

    public static UniqueId NewUniqueId()
    {
        UniqueId id;
        Check(_getUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    public static IntPtr InitRank(int worldSize, UniqueId id, int rank)
    {
        IntPtr comm;
        Check(_commInitRank(&comm, worldSize, id, rank), "ncclCommInitRank");
        return comm;
    }

    public static void Destroy(IntPtr comm) => _commDestroy(comm);

    public static void AllReduce(IntPtr send, IntPtr recv, long count, DataType type, IntPtr comm, IntPtr stream) =>
        Check(_allReduce(send, recv, (nuint)count, (int)type, Sum, comm, stream), "ncclAllReduce");

    public static void ReduceScatter(IntPtr send, IntPtr recv, long recvCount, DataType type, IntPtr comm, IntPtr stream) =>
        Check(_reduceScatter(send, recv, (nuint)recvCount, (int)type, Sum, comm, stream), "ncclReduceScatter");

    public static void AllGather(IntPtr send, IntPtr recv, long sendCount, DataType type, IntPtr comm, IntPtr stream) =>
        Check(_allGather(send, recv, (nuint)sendCount, (int)type, comm, stream), "ncclAllGather");

    public static void Broadcast(IntPtr send, IntPtr recv, long count, DataType type, int root, IntPtr comm, IntPtr stream) =>
        Check(_broadcast(send, recv, (nuint)count, (int)type, root, comm, stream), "ncclBroadcast");

    public static void GroupStart() => Check(_groupStart(), "ncclGroupStart");

    public static void GroupEnd() => Check(_groupEnd(), "ncclGroupEnd");

    static void Check(int result, string what)
    {
        if (result == 0) return;
        var text = _errorString is null ? null : Marshal.PtrToStringAnsi(_errorString(result));
        throw new OspreyException($"{what} failed with NCCL error {result} ({text ?? "unknown"}); rerun with NCCL_DEBUG=INFO for NCCL's own account.");
    }
}
