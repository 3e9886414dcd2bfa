using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// CUDA kernels (NVRTC, <see cref="KernelModule"/>) for the exported checkpoint formats on the GPU, so a forward never
/// rebuilds a layer through a chain of full-size tensor operations (7B decode: 234 ms per token for GPTQ, 99 ms for FP8,
/// against 9.7 ms in bf16, measured on an H100 before these kernels):
/// <list type="bullet">
/// <item>GPTQ 4- and 8-bit (<see cref="GptqWeight"/>): a dequantizing kernel writes Wᵀ [in, out] in the compute dtype in
///   one pass (for prefill and batches), and for up to <see cref="MaxFusedRows"/> rows a fused product reads the packed
///   codes once: each thread owns one output column (qweight's rows are contiguous along the outputs, so a warp's loads
///   coalesce), the inputs are split into slices over a second grid dimension, and the slices' float32 partial sums are
///   added in a fixed order afterwards (deterministic, no atomics).</item>
/// <item>AWQ 4-bit, GEMM packing (<see cref="AwqWeight"/>): a dequantizing kernel writes Wᵀ [in, out] in one pass, which is
///   what every forward multiplies by.</item>
/// <item>FP8 e4m3 (<see cref="Fp8Weight"/>): one dequantizing pass through the same 256-entry table and scales as the
///   tensor path.</item>
/// </list>
/// The dequantized weights equal the tensor path's bit for bit (one float32 multiply, one rounding to the compute dtype);
/// the fused product differs from a matmul of them by float32 summation order and that rounding only. `osprey
/// kernel-probe` checks both on the GPU. The dequantization kernels are on by default; the fused product is not (see <see cref="Unavailable"/>).
/// </summary>
internal static unsafe class PackedWeightKernels
{
    /// <summary>Rows (tokens) up to which the GPTQ product is fused; above, one dequantizing pass and cuBLAS.</summary>
    public const int MaxFusedRows = 4;

    const string Source = KernelModule.DTypeHelpers + """
// dtype codes: 0 float32, 1 float16, 2 bfloat16.
template <int T> __device__ __forceinline__ float ld(const void* p, long long i) {
  return T == 0 ? ((const float*)p)[i] : T == 1 ? h2f(((const u16*)p)[i]) : bf2f(((const u16*)p)[i]);
}
template <int C> __device__ __forceinline__ void st(void* p, long long i, float v) {
  if (C == 0) ((float*)p)[i] = v; else ((u16*)p)[i] = C == 2 ? f2bf(v) : f2h(v);
}
template <int B> __device__ __forceinline__ int code(u32 word, int j) { return (int)((word >> (B * j)) & ((1u << B) - 1u)); }
// GPTQ: qweight [K/per, N] int32 (per = 32/B codes of consecutive inputs in a word), qzeros [G, N/per] int32, scales
// [G, N] of dtype T, groups int64 [K]; w[n, k] = scale[g, n] * (q[k, n] - (zero[g, n] + zoff)), g = groups[k].
template <int B> __device__ __forceinline__ float zero_of(const u32* qz, long long g, int n, int N, int zoff) {
  const int per = 32 / B;
  return (float)(code<B>(qz[g * (N / per) + n / per], n % per) + zoff);
}

// out [K, N] in dtype C: the transposed dense weight.
template <int B, int T, int C> __device__ void gptq_dequant(const u32* qw, const u32* qz, const void* sc, const long long* grp,
    void* out, int N, int K, int zoff) {
  const int per = 32 / B;
  long long words = (long long)(K / per) * N;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < words; i += (long long)gridDim.x * blockDim.x) {
    long long kw = i / N;
    int n = (int)(i - kw * N);
    u32 w = qw[i];
#pragma unroll
    for (int j = 0; j < per; j++) {
      long long k = kw * per + j;
      long long g = grp[k];
      float s = ld<T>(sc, g * N + n);
      float z = zero_of<B>(qz, g, n, N, zoff);
      st<C>(out, k * N + n, s * ((float)code<B>(w, j) - z));
    }
  }
}

// part [S, M, N] float32: slice s = blockIdx.y sums inputs [s*chunk*per, (s+1)*chunk*per) of x [M, K] (dtype C) times w.
template <int B, int T, int C> __device__ void gptq_gemv(const u32* qw, const u32* qz, const void* sc, const long long* grp,
    const void* x, float* part, int M, int N, int K, int zoff, int chunk) {
  const int per = 32 / B;
  int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  int s = blockIdx.y;
  int w0 = s * chunk, w1 = min(w0 + chunk, K / per);
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  long long lastG = -1;
  float scale = 0.f, zero = 0.f;
  for (int kw = w0; kw < w1; kw++) {
    u32 w = qw[(long long)kw * N + n];
#pragma unroll
    for (int j = 0; j < per; j++) {
      int k = kw * per + j;
      long long g = __ldg(grp + k);
      if (g != lastG) { scale = ld<T>(sc, g * N + n); zero = zero_of<B>(qz, g, n, N, zoff); lastG = g; }
      float wt = scale * ((float)code<B>(w, j) - zero);
#pragma unroll
      for (int m = 0; m < 4; m++) {
        if (m >= M) break;
        acc[m] += wt * ld<C>(x, (long long)m * K + k);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < 4; m++) {
    if (m >= M) break;
    part[((long long)s * M + m) * N + n] = acc[m];
  }
}

// AWQ GEMM: qweight [K, N/8] int32, nibble p of a word holding column 8c + order[p] (order 0 2 4 6 1 3 5 7), qzeros
// [G, N/8] alike, scales [G, N] of dtype T, groups int64 [K]; out [K, N] = scale[g, n] * (q[k, n] - zero[g, n]), the
// transposed dense weight, one thread per word.
template <int T, int C> __device__ void awq_dequant(const u32* qw, const u32* qz, const void* sc, const long long* grp,
    void* out, int N, int K) {
  const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  const int words = N / 8;
  long long total = (long long)K * words;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long k = i / words;
    int c = (int)(i - k * words);
    long long g = grp[k];
    u32 w = qw[i], z = qz[g * words + c];
#pragma unroll
    for (int p = 0; p < 8; p++) {
      int n = c * 8 + order[p];
      int diff = (int)((w >> (4 * p)) & 15u) - (int)((z >> (4 * p)) & 15u);
      st<C>(out, k * N + n, ld<T>(sc, g * N + n) * (float)diff);
    }
  }
}

// FP8: codes [N, K] uint8 e4m3 through table[256]; scale: 0 one value, 1 one per row, 2 blocks [ceil(N/br), ceil(K/bc)].
template <int C> __device__ void fp8_dequant(const u8* codes, const float* table, const float* scale, void* out,
    int N, int K, int mode, int br, int bc) {
  __shared__ float t[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) t[i] = table[i];
  __syncthreads();
  long long total = (long long)N * K;
  int cols = (K + bc - 1) / bc;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long r = i / K;
    int c = (int)(i - r * K);
    float s = mode == 0 ? scale[0] : mode == 1 ? scale[r] : scale[(r / br) * cols + c / bc];
    st<C>(out, i, t[codes[i]] * s);
  }
}

#define GPTQ(B, T, C) \
  extern "C" __global__ void gptq_dequant_##B##_##T##C(const u32* qw, const u32* qz, const void* sc, const long long* grp, void* out, int N, int K, int zoff) \
    { gptq_dequant<B, T, C>(qw, qz, sc, grp, out, N, K, zoff); } \
  extern "C" __global__ void gptq_gemv_##B##_##T##C(const u32* qw, const u32* qz, const void* sc, const long long* grp, const void* x, float* part, int M, int N, int K, int zoff, int chunk) \
    { gptq_gemv<B, T, C>(qw, qz, sc, grp, x, part, M, N, K, zoff, chunk); }
#define GPTQ_C(B, T) GPTQ(B, T, 0) GPTQ(B, T, 1) GPTQ(B, T, 2)
#define GPTQ_T(B) GPTQ_C(B, 0) GPTQ_C(B, 1) GPTQ_C(B, 2)
GPTQ_T(4)
GPTQ_T(8)
#define AWQ(T, C) \
  extern "C" __global__ void awq_dequant_##T##C(const u32* qw, const u32* qz, const void* sc, const long long* grp, void* out, int N, int K) \
    { awq_dequant<T, C>(qw, qz, sc, grp, out, N, K); }
AWQ(0, 0) AWQ(0, 1) AWQ(0, 2) AWQ(1, 0) AWQ(1, 1) AWQ(1, 2) AWQ(2, 0) AWQ(2, 1) AWQ(2, 2)
extern "C" __global__ void fp8_dequant_0(const u8* c, const float* t, const float* s, void* o, int N, int K, int m, int br, int bc) { fp8_dequant<0>(c, t, s, o, N, K, m, br, bc); }
extern "C" __global__ void fp8_dequant_1(const u8* c, const float* t, const float* s, void* o, int N, int K, int m, int br, int bc) { fp8_dequant<1>(c, t, s, o, N, K, m, br, bc); }
extern "C" __global__ void fp8_dequant_2(const u8* c, const float* t, const float* s, void* o, int N, int K, int m, int br, int bc) { fp8_dequant<2>(c, t, s, o, N, K, m, br, bc); }
""";

    static readonly KernelModule Module = new("osprey_packed", Source,
        (from b in new[] { 4, 8 } from t in new[] { 0, 1, 2 } from c in new[] { 0, 1, 2 } from kind in new[] { "gptq_dequant", "gptq_gemv" }
         select $"{kind}_{b}_{t}{c}")
            .Concat(from t in new[] { 0, 1, 2 } from c in new[] { 0, 1, 2 } select $"awq_dequant_{t}{c}")
            .Concat(new[] { "fp8_dequant_0", "fp8_dequant_1", "fp8_dequant_2" }).ToList(),
        "GPTQ/AWQ/FP8 CUDA kernels", "dequantizing with tensor operations instead");

    /// <summary>
    /// Set by <c>osprey kernel-probe</c>, which checks the kernels: they are used regardless of OSPREY_FUSED_PACKED.
    /// </summary>
    internal static bool ForceOn { get; set; }

    /// <summary>Why the kernels are not used for a weight on <paramref name="onDevice"/>'s device, or null when they are.</summary>
    /// <remarks>
    /// On by default since `tools/packed_gpu_check.sh` ran on an H100 (benchmarks/session9-h100.md): the GPTQ 4/8-bit
    /// and FP8 dequantization kernels equal the tensor path bit for bit. OSPREY_FUSED_PACKED=0 turns them off. The fused
    /// GPTQ product (<see cref="GptqGemv"/>) failed that check (its products are wrong), so it is used only with
    /// OSPREY_GPTQ_FUSED_GEMV=1 (<see cref="FusedGemv"/>), for debugging it; kernel-probe still checks it.
    /// </remarks>
    public static string? Unavailable(Tensor onDevice)
    {
        if (onDevice.device_type != DeviceType.CUDA) return "not on CUDA";
        if (!ForceOn && Environment.GetEnvironmentVariable("OSPREY_FUSED_PACKED") == "0") return "off (OSPREY_FUSED_PACKED=0)";
        return Module.Unavailable(onDevice.device_index);
    }

    /// <summary>Whether decode may use the fused GPTQ product (OSPREY_GPTQ_FUSED_GEMV=1 or kernel-probe): off, as it failed its check on an H100.</summary>
    internal static bool FusedGemv => ForceOn || Environment.GetEnvironmentVariable("OSPREY_GPTQ_FUSED_GEMV") == "1";

    static int Code(ScalarType t) => t switch
    {
        ScalarType.Float32 => 0,
        ScalarType.Float16 => 1,
        ScalarType.BFloat16 => 2,
        _ => -1,
    };

    /// <summary>True when GPTQ weights of these bits, scale dtype and compute dtype have kernels.</summary>
    public static bool Supports(int bits, ScalarType scales, ScalarType compute) => bits is 4 or 8 && Code(scales) >= 0 && Code(compute) >= 0;

    static uint Grid(long threads) => (uint)Math.Min((threads + 255) / 256, 1L << 20);

    static long Ptr(Tensor t) => (long)CudaStreams.Address(t);

    /// <summary>GPTQ: the dense transposed weight Wᵀ [in, out] in <paramref name="compute"/>, built by one kernel.</summary>
    public static Tensor GptqDequantizeTransposed(Tensor qweight, Tensor qzeros, Tensor scales, Tensor groups, int bits, int zeroOffset, long inFeatures, long outFeatures, ScalarType compute)
    {
        var output = empty([inFeatures, outFeatures], dtype: compute, device: qweight.device);
        long qw = Ptr(qweight), qz = Ptr(qzeros), sc = Ptr(scales), grp = Ptr(groups), outPtr = Ptr(output);
        int n = (int)outFeatures, k = (int)inFeatures, zoff = zeroOffset;
        void** args = stackalloc void*[] { &qw, &qz, &sc, &grp, &outPtr, &n, &k, &zoff };
        Module.Launch(qweight.device_index, $"gptq_dequant_{bits}_{Code(scales.dtype)}{Code(compute)}", (Grid(inFeatures * bits / 32 * outFeatures), 1), 256, args);
        return output;
    }

    /// <summary>
    /// GPTQ: x [M, in] (contiguous, the compute dtype, M ≤ <see cref="MaxFusedRows"/>) times Wᵀ, fused; returns [M, out]
    /// in the compute dtype.
    /// </summary>
    public static Tensor GptqGemv(Tensor x, Tensor qweight, Tensor qzeros, Tensor scales, Tensor groups, int bits, int zeroOffset, long outFeatures)
    {
        int m = (int)x.shape[0], k = (int)x.shape[1], n = (int)outFeatures, zoff = zeroOffset;
        var words = k / (32 / bits);
        var columnBlocks = (n + 255) / 256;
        // Enough blocks to fill an H100 twice over (132 SMs), each slice at least 16 words.
        var slices = Math.Clamp((264 + columnBlocks - 1) / columnBlocks, 1, Math.Max(1, words / 16));
        var chunk = (words + slices - 1) / slices;
        slices = (words + chunk - 1) / chunk;
        using var part = empty([slices, m, n], dtype: ScalarType.Float32, device: x.device);
        long qw = Ptr(qweight), qz = Ptr(qzeros), sc = Ptr(scales), grp = Ptr(groups), xp = Ptr(x), pp = Ptr(part);
        void** args = stackalloc void*[] { &qw, &qz, &sc, &grp, &xp, &pp, &m, &n, &k, &zoff, &chunk };
        Module.Launch(qweight.device_index, $"gptq_gemv_{bits}_{Code(scales.dtype)}{Code(x.dtype)}", ((uint)columnBlocks, (uint)slices), 256, args);
        using var summed = part.sum(0L); // over the slices; a plain 0 binds to sum(ScalarType.Byte), a full reduction: the bug the H100 probe caught
        return summed.to_type(x.dtype);
    }

    /// <summary>True when AWQ weights with scales of this dtype and this compute dtype have a kernel.</summary>
    public static bool SupportsAwq(ScalarType scales, ScalarType compute) => Code(scales) >= 0 && Code(compute) >= 0;

    /// <summary>AWQ (GEMM packing): the dense transposed weight Wᵀ [in, out] in <paramref name="compute"/>, built by one kernel.</summary>
    public static Tensor AwqDequantizeTransposed(Tensor qweight, Tensor qzeros, Tensor scales, Tensor groups, long inFeatures, long outFeatures, ScalarType compute)
    {
        var output = empty([inFeatures, outFeatures], dtype: compute, device: qweight.device);
        long qw = Ptr(qweight), qz = Ptr(qzeros), sc = Ptr(scales), grp = Ptr(groups), outPtr = Ptr(output);
        int n = (int)outFeatures, k = (int)inFeatures;
        void** args = stackalloc void*[] { &qw, &qz, &sc, &grp, &outPtr, &n, &k };
        Module.Launch(qweight.device_index, $"awq_dequant_{Code(scales.dtype)}{Code(compute)}", (Grid(inFeatures * outFeatures / 8), 1), 256, args);
        return output;
    }

    /// <summary>FP8: the dense weight [out, in] in <paramref name="compute"/>; <paramref name="block"/> [r, c] for block scales.</summary>
    public static Tensor Fp8Dequantize(Tensor codes, Tensor table, Tensor scale, long[]? block, ScalarType compute)
    {
        long rows = codes.shape[0], cols = codes.shape[1];
        var output = empty([rows, cols], dtype: compute, device: codes.device);
        using var flatScale = scale.contiguous();
        long c = Ptr(codes), t = Ptr(table), s = Ptr(flatScale), o = Ptr(output);
        int n = (int)rows, k = (int)cols, mode = block is not null ? 2 : flatScale.numel() == 1 ? 0 : 1;
        int br = (int)(block?[0] ?? 1), bc = (int)(block?[1] ?? 1);
        void** args = stackalloc void*[] { &c, &t, &s, &o, &n, &k, &mode, &br, &bc };
        Module.Launch(codes.device_index, $"fp8_dequant_{Code(compute)}", (Grid(rows * cols), 1), 256, args);
        return output;
    }
}
