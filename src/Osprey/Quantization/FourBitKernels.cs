using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// CUDA kernels for bitsandbytes 4-bit weights, compiled at first use with NVRTC: a dequantization that builds the dense
/// weight in one pass (instead of the dozen tensor operations of <see cref="FourBitWeight.Dequantize"/>'s portable path)
/// and, for the few rows of a decode step, a fused dequantize-and-multiply that never writes the dense weight: it reads
/// half a byte per weight where a bf16 matmul reads two. The dequantization gives the portable path's values bit for
/// bit: each weight is float32(code) × absmax (absmax decoded from its 8-bit nested form with the same float32 multiply
/// and add, FMA contraction off), rounded to the stored dtype and then to the compute dtype, as the tensor code does.
/// The fused product accumulates code × x in float32 and applies each block's absmax once per 32 weights, so it matches
/// a matmul of the dequantized weight to the compute dtype's rounding (checked by <c>osprey kernel-probe</c>).
/// Set OSPREY_FUSED_4BIT=0 to use the portable path on CUDA too.
/// </summary>
internal static unsafe class FourBitKernels
{
    /// <summary>Rows (tokens) up to which the fused product is used; above it a dequantized matmul is faster (kernel-probe on an H100: 8 rows took 0.17-0.19 ms against 0.14 ms at 7B MLP shapes).</summary>
    public const int MaxFusedRows = 4;

    const string Source = KernelModule.DTypeHelpers + """
// dtype codes: 0 float32, 1 float16, 2 bfloat16. T = the stored dtype, C = the compute dtype (compile-time).
template <int T> __device__ __forceinline__ float round_to(float v) { return T == 2 ? bf2f(f2bf(v)) : T == 1 ? h2f(f2h(v)) : v; }
template <int C> __device__ __forceinline__ u16 to16(float v) { return C == 2 ? f2bf(v) : f2h(v); }
template <int C> __device__ __forceinline__ float from16(u16 h) { return C == 2 ? bf2f(h) : h2f(h); }
template <int DQ> __device__ __forceinline__ float block_absmax(const void* absmax, const float* nabs, const float* nmap,
                                                                float offset, long long block, int nbs) {
  if (!DQ) return ((const float*)absmax)[block];
  float d = nmap[((const u8*)absmax)[block]] * nabs[block / nbs];
  return d + offset;
}
template <int T, int C> __device__ __forceinline__ float weight(const float* q, u32 code, float a) {
  float v = round_to<T>(q[code] * a);
  return T == C ? v : round_to<C>(v);
}

// Any n and block size: one packed byte (two weights) per thread.
template <int DQ, int T, int C> __device__ void dequant_any(const u8* packed, const void* absmax, const float* nabs,
    const float* nmap, float offset, const float* qmap, long long n, int bs, int nbs, void* out) {
  long long bytes = (n + 1) / 2;
  for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < bytes; j += (long long)gridDim.x * blockDim.x) {
    u32 b = packed[j];
    long long e = 2 * j;
    for (int h = 0; h < 2 && e + h < n; h++) {
      float a = block_absmax<DQ>(absmax, nabs, nmap, offset, (e + h) / bs, nbs);
      float v = weight<T, C>(qmap, h == 0 ? b >> 4 : b & 15u, a);
      if (C == 0) ((float*)out)[e + h] = v; else ((u16*)out)[e + h] = to16<C>(v);
    }
  }
}

// n % 16 == 0 and blocks of 64: eight packed bytes (sixteen weights, one block) per thread, vector loads and stores.
template <int DQ, int T, int C> __device__ void dequant_vec(const u8* packed, const void* absmax, const float* nabs,
    const float* nmap, float offset, const float* qmap, long long n, int nbs, void* out) {
  __shared__ float sq[16];
  if (threadIdx.x < 16) sq[threadIdx.x] = qmap[threadIdx.x];
  __syncthreads();
  long long groups = n / 16;
  for (long long g = blockIdx.x * (long long)blockDim.x + threadIdx.x; g < groups; g += (long long)gridDim.x * blockDim.x) {
    uint2 q = ((const uint2*)packed)[g];
    float a = block_absmax<DQ>(absmax, nabs, nmap, offset, g / 4, nbs);
    float w[16];
    u32 words[2] = {q.x, q.y};
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int j = 0; j < 4; j++) {
        u32 b = (words[i] >> (8 * j)) & 0xffu;
        w[8 * i + 2 * j] = weight<T, C>(sq, b >> 4, a);
        w[8 * i + 2 * j + 1] = weight<T, C>(sq, b & 15u, a);
      }
    if (C == 0) {
      float4* o = (float4*)((float*)out + g * 16);
#pragma unroll
      for (int v = 0; v < 4; v++) o[v] = make_float4(w[4 * v], w[4 * v + 1], w[4 * v + 2], w[4 * v + 3]);
    } else {
      u32 p[8];
#pragma unroll
      for (int v = 0; v < 8; v++) p[v] = (u32)to16<C>(w[2 * v]) | ((u32)to16<C>(w[2 * v + 1]) << 16);
      uint4* o = (uint4*)((u16*)out + g * 16);
      o[0] = make_uint4(p[0], p[1], p[2], p[3]);
      o[1] = make_uint4(p[4], p[5], p[6], p[7]);
    }
  }
}

// y[m, n] = sum_k x[m, k] w[n, k] for m < M <= 8; one warp per output row; K % 64 == 0, blocks of 64. Each lane
// takes two 16-byte chunks (64 weights) per iteration so two loads are in flight; the nested absmax map sits in shared
// memory so a chunk's scale costs no dependent global load.
template <int DQ, int T, int C> __device__ __forceinline__ void gemv_chunk(uint4 q, float a, const float* sq, const void* x,
    int M, int K, int k0, float* acc) {
  // The chunk's 32 weights share one absmax: sum_k x_k (code_k a) = a sum_k x_k code_k, so the scale is applied once per
  // chunk instead of per weight (and no weight is rounded to the stored dtype first). The result differs from a matmul
  // of the dequantized weight by that dtype's rounding only.
  float w[32];
  u32 words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) {
      u32 b = (words[i] >> (8 * j)) & 0xffu;
      w[8 * i + 2 * j] = sq[b >> 4];
      w[8 * i + 2 * j + 1] = sq[b & 15u];
    }
#pragma unroll
  for (int m = 0; m < 8; m++) {
    if (m >= M) break;
    float s = 0;
    if (C == 0) {
      const float4* xv = (const float4*)((const float*)x + (long long)m * K + k0);
#pragma unroll
      for (int v = 0; v < 8; v++) {
        float4 f = __ldg(xv + v);
        s += w[4 * v] * f.x + w[4 * v + 1] * f.y + w[4 * v + 2] * f.z + w[4 * v + 3] * f.w;
      }
    } else {
      const uint4* xv = (const uint4*)((const u16*)x + (long long)m * K + k0);
#pragma unroll
      for (int v = 0; v < 4; v++) {
        uint4 h = __ldg(xv + v);
        u32 hw[4] = {h.x, h.y, h.z, h.w};
#pragma unroll
        for (int t = 0; t < 4; t++)
          s += w[8 * v + 2 * t] * from16<C>((u16)(hw[t] & 0xffffu)) + w[8 * v + 2 * t + 1] * from16<C>((u16)(hw[t] >> 16));
      }
    }
    acc[m] += a * s;
  }
}

template <int DQ, int T, int C> __device__ void gemv(const u8* packed, const void* absmax, const float* nabs,
    const float* nmap, float offset, const float* qmap, const void* x, void* y, int M, int N, int K, int nbs) {
  __shared__ float sq[16];
  __shared__ float snm[256];
  if (threadIdx.x < 16) sq[threadIdx.x] = qmap[threadIdx.x];
  if (DQ) for (int i = threadIdx.x; i < 256; i += blockDim.x) snm[i] = nmap[i];
  __syncthreads();
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int n = blockIdx.x * (blockDim.x >> 5) + warp;
  if (n >= N) return;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const uint4* row = (const uint4*)(packed + (long long)n * (K / 2));
  long long firstBlock = (long long)n * (K / 64);
  int chunks = K / 32;
  for (int c = lane; c < chunks; c += 64) {
    int c1 = c + 32;
    bool two = c1 < chunks;
    uint4 q0 = row[c];
    uint4 q1 = two ? row[c1] : make_uint4(0, 0, 0, 0);
    float a0 = block_absmax<DQ>(absmax, nabs, snm, offset, firstBlock + c / 2, nbs);
    float a1 = two ? block_absmax<DQ>(absmax, nabs, snm, offset, firstBlock + c1 / 2, nbs) : 0.f;
    gemv_chunk<DQ, T, C>(q0, a0, sq, x, M, K, c * 32, acc);
    if (two) gemv_chunk<DQ, T, C>(q1, a1, sq, x, M, K, c1 * 32, acc);
  }
#pragma unroll
  for (int m = 0; m < 8; m++) {
    if (m >= M) break;
    float v = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) { if (C == 0) ((float*)y)[(long long)m * N + n] = v; else ((u16*)y)[(long long)m * N + n] = to16<C>(v); }
  }
}

#define ARGS_ANY const u8* p, const void* a, const float* na, const float* nm, float o, const float* q, long long n, int bs, int nbs, void* out
#define ARGS_VEC const u8* p, const void* a, const float* na, const float* nm, float o, const float* q, long long n, int nbs, void* out
#define ARGS_GEMV const u8* p, const void* a, const float* na, const float* nm, float o, const float* q, const void* x, void* y, int M, int N, int K, int nbs
#define KERNELS(DQ, T, C) \
  extern "C" __global__ void dequant_any_##DQ##T##C(ARGS_ANY) { dequant_any<DQ, T, C>(p, a, na, nm, o, q, n, bs, nbs, out); } \
  extern "C" __global__ void dequant_vec_##DQ##T##C(ARGS_VEC) { dequant_vec<DQ, T, C>(p, a, na, nm, o, q, n, nbs, out); } \
  extern "C" __global__ void gemv_##DQ##T##C(ARGS_GEMV) { gemv<DQ, T, C>(p, a, na, nm, o, q, x, y, M, N, K, nbs); }
#define FOR_C(DQ, T) KERNELS(DQ, T, 0) KERNELS(DQ, T, 1) KERNELS(DQ, T, 2)
#define FOR_T(DQ) FOR_C(DQ, 0) FOR_C(DQ, 1) FOR_C(DQ, 2)
FOR_T(0)
FOR_T(1)
""";

    const uint WarpsPerBlock = 8;

    static readonly KernelModule Module = new("osprey_4bit", Source,
        (from dq in new[] { 0, 1 } from t in new[] { 0, 1, 2 } from c in new[] { 0, 1, 2 } from kind in new[] { "dequant_any", "dequant_vec", "gemv" }
         select $"{kind}_{dq}{t}{c}").ToList(),
        "4-bit CUDA kernels", "dequantizing with tensor operations instead");

    /// <summary>Why the kernels are not used here, or null when they are (checked once per process).</summary>
    public static string? Unavailable(Tensor onDevice)
    {
        if (onDevice.device_type != DeviceType.CUDA) return "not on CUDA";
        if (Environment.GetEnvironmentVariable("OSPREY_FUSED_4BIT") == "0") return "OSPREY_FUSED_4BIT=0";
        return Module.Unavailable(onDevice.device_index);
    }

    static int Code(ScalarType t) => t switch
    {
        ScalarType.Float32 => 0,
        ScalarType.Float16 => 1,
        ScalarType.BFloat16 => 2,
        _ => throw new OspreyException($"4-bit weights dequantize to float32, float16 or bfloat16, not {t}."),
    };

    /// <summary>The dense [out, in] weight in the compute dtype, built by one kernel.</summary>
    public static Tensor Dequantize(FourBitWeight w)
    {
        var device = w.Packed.device_index;
        var n = w.OutFeatures * w.InFeatures;
        var output = empty([w.OutFeatures, w.InFeatures], dtype: w.ComputeDType, device: w.Packed.device);
        var (packed, absmax, nabs, nmap, qmap, outPtr) = (Ptr(w.Packed), Ptr(w.Absmax), Ptr(w.NestedAbsmax), Ptr(w.NestedQuantMap), Ptr(w.QuantMap), Ptr(output));
        var offset = w.NestedOffset;
        int bs = w.BlockSize, nbs = Math.Max(1, w.NestedBlockSize);
        var suffix = Suffix(w);
        if (n % 16 == 0 && bs == 64 && packed % 8 == 0 && outPtr % 16 == 0)
        {
            void** args = stackalloc void*[] { &packed, &absmax, &nabs, &nmap, &offset, &qmap, &n, &nbs, &outPtr };
            Module.Launch(device, "dequant_vec_" + suffix, (Grid(n / 16), 1), 256, args);
        }
        else
        {
            void** args = stackalloc void*[] { &packed, &absmax, &nabs, &nmap, &offset, &qmap, &n, &bs, &nbs, &outPtr };
            Module.Launch(device, "dequant_any_" + suffix, (Grid((n + 1) / 2), 1), 256, args);
        }
        return output;
    }

    static uint Grid(long threads) => (uint)Math.Min((threads + 255) / 256, 1L << 20);

    /// <summary>The kernel-name suffix: double quantization, stored dtype, compute dtype.</summary>
    static string Suffix(FourBitWeight w) => $"{(w.NestedAbsmax is null ? 0 : 1)}{Code(w.DType)}{Code(w.ComputeDType)}";

    /// <summary>
    /// x [.., in] (in the compute dtype, at most <see cref="MaxFusedRows"/> rows) times the weight's transpose, fused; null
    /// when the shapes don't suit the kernel (the caller then dequantizes).
    /// </summary>
    public static Tensor? TryGemv(FourBitWeight w, Tensor x)
    {
        var k = w.InFeatures;
        if (x.dtype != w.ComputeDType || x.shape[^1] != k || k % 64 != 0 || w.BlockSize != 64) return null;
        var rows = x.numel() / k;
        if (rows < 1 || rows > MaxFusedRows || k > int.MaxValue || w.OutFeatures > int.MaxValue) return null;
        using var x2 = x.reshape(rows, k).contiguous();
        var xPtr = Ptr(x2);
        if ((xPtr % 16) != 0 || (Ptr(w.Packed) % 16) != 0) return null;
        var device = w.Packed.device_index;
        var shape = x.shape.ToArray();
        shape[^1] = w.OutFeatures;
        var y = empty(shape, dtype: w.ComputeDType, device: x.device);
        var (packed, absmax, nabs, nmap, qmap, yPtr) = (Ptr(w.Packed), Ptr(w.Absmax), Ptr(w.NestedAbsmax), Ptr(w.NestedQuantMap), Ptr(w.QuantMap), Ptr(y));
        var offset = w.NestedOffset;
        int m = (int)rows, n = (int)w.OutFeatures, kk = (int)k, nbs = Math.Max(1, w.NestedBlockSize);
        void** args = stackalloc void*[] { &packed, &absmax, &nabs, &nmap, &offset, &qmap, &xPtr, &yPtr, &m, &n, &kk, &nbs };
        Module.Launch(device, "gemv_" + Suffix(w), ((uint)((n + WarpsPerBlock - 1) / WarpsPerBlock), 1), WarpsPerBlock * 32, args);
        return y;
    }

    static long Ptr(Tensor? t) => t is null ? 0 : (long)CudaStreams.Address(t);
}
