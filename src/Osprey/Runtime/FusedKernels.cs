using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// Fused CUDA kernels for the elementwise work of a decoder layer: RMSNorm (optionally with the residual add before it),
/// RoPE applied to query and key heads in place, and SwiGLU, each with the backward pass training needs. Compiled at run
/// time with NVRTC (<see cref="KernelCache"/>), launched on libtorch's current stream so CUDA graphs capture them.
/// </summary>
/// <remarks>
/// Each forward kernel rounds where the tensor-op path it replaces rounds (float32 math, one rounding to the storage
/// dtype per op of that path; no fused multiply-add), so RoPE and SwiGLU give the tensor path's bits and RMSNorm differs
/// only by the order of its sum of squares. <c>osprey kernel-probe --fused</c> checks every kernel, forward and backward,
/// against the tensor path on the GPU. <c>OSPREY_FUSED_KERNELS=0</c> turns them off; on the CPU the tensor path runs.
/// </remarks>
internal static unsafe class FusedKernels
{
    const string Source = KernelModule.DTypeHelpers + """
// dtype codes: 0 float32, 1 float16, 2 bfloat16.
template <int C> __device__ __forceinline__ float ld(const void* p, long long i) {
  return C == 0 ? ((const float*)p)[i] : C == 2 ? bf2f(((const u16*)p)[i]) : h2f(((const u16*)p)[i]);
}
template <int C> __device__ __forceinline__ void st(void* p, long long i, float v) {
  if (C == 0) ((float*)p)[i] = v; else ((u16*)p)[i] = C == 2 ? f2bf(v) : f2h(v);
}
template <int C> __device__ __forceinline__ float rnd(float v) { return C == 2 ? bf2f(f2bf(v)) : C == 1 ? h2f(f2h(v)) : v; }

// Sum over the block (blockDim.x a multiple of 32); every thread gets the total.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One block per row of `dim` contiguous elements. R: h = round(x + res) is written to `sum` and normed. O: Gemma's
// (1 + w) scale applied before the rounding; else w * round(normed) as Llama. inv (float32, per row) is kept when asked.
template <int C, int O, int R> __device__ void rms_fwd(const void* x, const void* res, void* sum, const void* w, void* y,
                                                      float* inv_out, int dim, float eps) {
  long long base = (long long)blockIdx.x * dim;
  float ss = 0.f;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) {
    float h = ld<C>(x, base + j);
    if (R) { h = rnd<C>(h + ld<C>(res, base + j)); st<C>(sum, base + j, h); }
    ss += h * h;
  }
  ss = block_sum(ss);
  float inv = rsqrtf(ss * (1.f / (float)dim) + eps);
  if (inv_out != 0 && threadIdx.x == 0) inv_out[blockIdx.x] = inv;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) {
    float h = R ? ld<C>(sum, base + j) : ld<C>(x, base + j);
    float n = h * inv;
    st<C>(y, base + j, O ? n * (ld<C>(w, j) + 1.f) : ld<C>(w, j) * rnd<C>(n));
  }
}

// dx = inv (g - n mean(g n)) with g = dy * scale and n = h inv: the gradient of the norm (the roundings taken as identity).
template <int C, int O> __device__ void rms_bwd(const void* dy, const void* h, const void* w, const float* inv, void* dx, int dim) {
  long long base = (long long)blockIdx.x * dim;
  float iv = inv[blockIdx.x], dot = 0.f;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) {
    float scale = O ? ld<C>(w, j) + 1.f : ld<C>(w, j);
    dot += ld<C>(dy, base + j) * scale * (ld<C>(h, base + j) * iv);
  }
  dot = block_sum(dot) * (1.f / (float)dim);
  for (int j = threadIdx.x; j < dim; j += blockDim.x) {
    float scale = O ? ld<C>(w, j) + 1.f : ld<C>(w, j);
    float g = ld<C>(dy, base + j) * scale, n = ld<C>(h, base + j) * iv;
    st<C>(dx, base + j, iv * (g - n * dot));
  }
}

// x [B, T, heads, D] (strides sb, st, sh; D contiguous), rotary tables [B or 1, 1, T, rot] (strides cb, ct). One block
// per (b, t). Forward: (x1, x2) -> (x1 c1 - x2 s1, x2 c2 + x1 s2) rounded as x*cos + rotate_half(x)*sin; INV: the
// transpose (the backward pass). Dims past rot are copied when out is not x.
template <int C, int INV> __device__ void rope(const void* x, void* out, const void* cs, const void* sn, int T, int heads,
    int D, int rot, long long sb, long long st_, long long sh, long long ob, long long ot, long long oh, long long cb, long long ct) {
  int b = blockIdx.x / T, t = blockIdx.x % T, half = rot / 2;
  long long xo = b * sb + t * st_, oo = b * ob + t * ot, co = b * cb + t * ct;
  for (int i = threadIdx.x; i < heads * half; i += blockDim.x) {
    int hd = i / half, j = i % half;
    long long xi = xo + hd * sh + j, oi = oo + hd * oh + j;
    float x1 = ld<C>(x, xi), x2 = ld<C>(x, xi + half);
    float c1 = ld<C>(cs, co + j), c2 = ld<C>(cs, co + j + half), s1 = ld<C>(sn, co + j), s2 = ld<C>(sn, co + j + half);
    float o1, o2;
    if (!INV) { o1 = rnd<C>(x1 * c1) + rnd<C>(-x2 * s1); o2 = rnd<C>(x2 * c2) + rnd<C>(x1 * s2); }
    else { o1 = rnd<C>(x1 * c1) + rnd<C>(x2 * s2); o2 = rnd<C>(x2 * c2) + rnd<C>(-x1 * s1); }
    st<C>(out, oi, o1);
    st<C>(out, oi + half, o2);
  }
  if (x != out && rot < D)
    for (int i = threadIdx.x; i < heads * (D - rot); i += blockDim.x) {
      int hd = i / (D - rot), j = rot + i % (D - rot);
      st<C>(out, oo + hd * oh + j, ld<C>(x, xo + hd * sh + j));
    }
}

// y = round(silu(g)) * u over rows x n (row strides gs, us for g and u; y contiguous), as the tensor path rounds.
template <int C> __device__ void swiglu(const void* g, const void* u, void* y, long long rows, int n, long long gs, long long us) {
  long long total = rows * n;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long r = i / n; int j = (int)(i % n);
    float gv = ld<C>(g, r * gs + j), uv = ld<C>(u, r * us + j);
    float act = rnd<C>(gv / (1.f + expf(-gv)));
    st<C>(y, i, act * uv);
  }
}

// The backward of swiglu: du = dy silu(g), dg = (dy u) sigmoid(g) (1 + g (1 - sigmoid(g))); dg and du have the layout of
// g and u (row strides gs, us), dy is contiguous.
template <int C> __device__ void swiglu_bwd(const void* dy, const void* g, const void* u, void* dg, void* du, long long rows, int n,
    long long gs, long long us) {
  long long total = rows * n;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long r = i / n; int j = (int)(i % n);
    float gv = ld<C>(g, r * gs + j), uv = ld<C>(u, r * us + j), d = ld<C>(dy, i);
    float sig = 1.f / (1.f + expf(-gv));
    float act = rnd<C>(gv / (1.f + expf(-gv)));
    float dact = rnd<C>(d * uv);
    st<C>(du, r * us + j, d * act);
    st<C>(dg, r * gs + j, dact * sig * (1.f + gv * (1.f - sig)));
  }
}

// One decode step (one new position per row) of the serving engine's slots: the query heads of x [B, 1, hq + 2 hkv, D]
// (strides sb, sh) are rotated in place; the key heads are rotated straight into the key cache and the value heads copied
// into the value cache ([B, hkv, capacity, D], strides kb, kh, kt) at each row's position pos[b * pb]. Rounds as rope.
template <int C> __device__ void rope_kv(void* x, const void* cs, const void* sn, int hq, int hkv, int D, int rot,
    long long sb, long long sh, long long cb, void* kc, void* vc, long long kb, long long kh, long long kt,
    const long long* pos, long long pb) {
  int b = blockIdx.x, half = rot / 2;
  long long xo = b * sb, co = b * cb, p = pos[b * pb];
  for (int i = threadIdx.x; i < (hq + hkv) * half; i += blockDim.x) {
    int hd = i / half, j = i % half;
    long long xi = xo + hd * sh + j;
    float x1 = ld<C>(x, xi), x2 = ld<C>(x, xi + half);
    float c1 = ld<C>(cs, co + j), c2 = ld<C>(cs, co + j + half), s1 = ld<C>(sn, co + j), s2 = ld<C>(sn, co + j + half);
    float o1 = rnd<C>(x1 * c1) + rnd<C>(-x2 * s1), o2 = rnd<C>(x2 * c2) + rnd<C>(x1 * s2);
    if (hd < hq) { st<C>(x, xi, o1); st<C>(x, xi + half, o2); }
    else {
      long long ki = b * kb + (hd - hq) * kh + p * kt + j;
      st<C>(kc, ki, o1); st<C>(kc, ki + half, o2);
    }
  }
  for (int i = threadIdx.x; i < hkv * (D - rot); i += blockDim.x) {
    int hd = i / (D - rot), j = rot + i % (D - rot);
    st<C>(kc, b * kb + hd * kh + p * kt + j, ld<C>(x, xo + (hq + hd) * sh + j));
  }
  for (int i = threadIdx.x; i < hkv * D; i += blockDim.x) {
    int hd = i / D, j = i % D;
    st<C>(vc, b * kb + hd * kh + p * kt + j, ld<C>(x, xo + (hq + hkv + hd) * sh + j));
  }
}

// Cross-entropy over rows of V logits (row stride rs) against int64 targets, one block per row (rows past the grid
// loop): an online max and sum of exp per thread in float32, merged over the block; lse = max + log(sum), loss = lse -
// x[target] (0 for a negative target), am = the first index of the largest logit (argmax's tie rule).
#define NEG_INF __int_as_float(0xff800000)
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
  if (m2 == NEG_INF) return;
  if (m == NEG_INF) { m = m2; s = s2; return; }
  float mx = fmaxf(m, m2);
  s = s * expf(m - mx) + s2 * expf(m2 - mx);
  m = mx;
}
__device__ __forceinline__ void max_merge(float& b, int& i, float b2, int i2) {
  if (b2 > b || (b2 == b && i2 < i)) { b = b2; i = i2; }
}
// Both merges over the 32 lanes of a warp; every lane ends with the warp's result.
__device__ __forceinline__ void warp_merge(float& m, float& s, float& best, int& bi) {
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    float b2 = __shfl_xor_sync(0xffffffffu, best, o);
    int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
    lse_merge(m, s, m2, s2);
    max_merge(best, bi, b2, i2);
  }
}
template <int C> __device__ void ce_fwd(const void* x, long long rs, const long long* target, float* lse, float* loss,
    long long* am, long long rows, int V) {
  __shared__ float pm[32], ps[32], pb[32];
  __shared__ int pi[32];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    long long base = r * rs;
    float m = NEG_INF, s = 0.f, best = NEG_INF;
    int bi = 0x7fffffff;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      float v = ld<C>(x, base + j);
      if (v == NEG_INF) continue;
      if (v > m) { s = s * expf(m - v) + 1.f; m = v; } else s += expf(v - m);
      if (v > best) { best = v; bi = j; }
    }
    warp_merge(m, s, best, bi);
    if (lane == 0) { pm[warp] = m; ps[warp] = s; pb[warp] = best; pi[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
      m = lane < warps ? pm[lane] : NEG_INF; s = lane < warps ? ps[lane] : 0.f;
      best = lane < warps ? pb[lane] : NEG_INF; bi = lane < warps ? pi[lane] : 0x7fffffff;
      warp_merge(m, s, best, bi);
      if (lane == 0) {
        float l = m + logf(s);
        long long t = target[r];
        lse[r] = l;
        loss[r] = t < 0 ? 0.f : l - ld<C>(x, base + t);
        am[r] = bi == 0x7fffffff ? 0 : bi;
      }
    }
    __syncthreads();
  }
}

// The gradient of ce_fwd's loss weighted per row by g (float32): dx = (softmax(x) - onehot(target)) g, rounded once to the
// dtype; a negative target's row is zero. Grid: x over the columns, y over the rows (looping past 65,535).
template <int C> __device__ void ce_bwd(const void* x, long long rs, const long long* target, const float* lse,
    const float* g, void* dx, long long ds, long long rows, int V) {
  for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
    long long t = target[r];
    float l = lse[r], gr = t < 0 ? 0.f : g[r];
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < V; j += gridDim.x * blockDim.x) {
      float p = expf(ld<C>(x, r * rs + j) - l);
      st<C>(dx, r * ds + j, (j == t ? p - 1.f : p) * gr);
    }
  }
}

// One AdamW step over flat float32 buffers (p master weights, m and v moments, g gradients), each element once: the
// tensor path's eight kernels (mul_, lerp_, mul_, addcmul_, sqrt, div, add_, addcdiv_) in their order of rounding.
extern "C" __global__ void adamw_step(float* p, float* m, float* v, const float* g, long long n, float keep, float w1,
    float b2, float c2, float inv_bc2, float eps, float step, int decay) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float gi = g[i], mi = m[i], vi = v[i], pi = p[i];
    if (decay) pi = pi * keep;
    mi = w1 < 0.5f ? mi + w1 * (gi - mi) : gi - (gi - mi) * (1.f - w1);
    vi = vi * b2;
    vi = vi + c2 * gi * gi;
    float denom = sqrtf(vi) * inv_bc2 + eps; // libtorch divides by a scalar as a product with its reciprocal
    p[i] = pi + step * (mi / denom);
    m[i] = mi;
    v[i] = vi;
  }
}

#define RMS(C, O, R) extern "C" __global__ void rms_fwd_##C##O##R(const void* x, const void* res, void* sum, const void* w, void* y, \
    float* inv, int dim, float eps) { rms_fwd<C, O, R>(x, res, sum, w, y, inv, dim, eps); }
#define RMSB(C, O) extern "C" __global__ void rms_bwd_##C##O(const void* dy, const void* h, const void* w, const float* inv, void* dx, \
    int dim) { rms_bwd<C, O>(dy, h, w, inv, dx, dim); }
#define ROPE(C, I) extern "C" __global__ void rope_##C##I(const void* x, void* out, const void* cs, const void* sn, int T, int heads, \
    int D, int rot, long long sb, long long st_, long long sh, long long ob, long long ot, long long oh, long long cb, long long ct) { \
    rope<C, I>(x, out, cs, sn, T, heads, D, rot, sb, st_, sh, ob, ot, oh, cb, ct); }
#define SWI(C) extern "C" __global__ void swiglu_##C(const void* g, const void* u, void* y, long long rows, int n, long long gs, \
    long long us) { swiglu<C>(g, u, y, rows, n, gs, us); } \
  extern "C" __global__ void swiglu_bwd_##C(const void* dy, const void* g, const void* u, void* dg, void* du, long long rows, int n, \
    long long gs, long long us) { swiglu_bwd<C>(dy, g, u, dg, du, rows, n, gs, us); }
#define RKV(C) extern "C" __global__ void rope_kv_##C(void* x, const void* cs, const void* sn, int hq, int hkv, int D, int rot, \
    long long sb, long long sh, long long cb, void* kc, void* vc, long long kb, long long kh, long long kt, const long long* pos, \
    long long pb) { rope_kv<C>(x, cs, sn, hq, hkv, D, rot, sb, sh, cb, kc, vc, kb, kh, kt, pos, pb); }
#define CE(C) extern "C" __global__ void ce_fwd_##C(const void* x, long long rs, const long long* target, float* lse, float* loss, \
    long long* am, long long rows, int V) { ce_fwd<C>(x, rs, target, lse, loss, am, rows, V); } \
  extern "C" __global__ void ce_bwd_##C(const void* x, long long rs, const long long* target, const float* lse, const float* g, \
    void* dx, long long ds, long long rows, int V) { ce_bwd<C>(x, rs, target, lse, g, dx, ds, rows, V); }
#define ALL(C) RMS(C, 0, 0) RMS(C, 0, 1) RMS(C, 1, 0) RMS(C, 1, 1) RMSB(C, 0) RMSB(C, 1) ROPE(C, 0) ROPE(C, 1) SWI(C) RKV(C) CE(C)
ALL(0)
ALL(1)
ALL(2)
""";

    static readonly KernelModule Module = new("osprey_fused", Source, Names().ToList(), "fused CUDA kernels", "using tensor operations instead");

    /// <summary>
    /// Whether training (autograd) uses the fused kernels too: on unless <c>OSPREY_FUSED_TRAINING=0</c>. On an H100
    /// <c>osprey kernel-probe --fused true</c> passed every forward and backward check and training got faster at every
    /// measured size (benchmarks/session13-h100.md). Inference uses them whenever they load.
    /// </summary>
    internal static bool Autograd { get; set; } = Environment.GetEnvironmentVariable("OSPREY_FUSED_TRAINING") != "0";

    /// <summary>Makes this thread take the tensor-op path (the probe's reference) while set.</summary>
    [ThreadStatic]
    internal static bool TensorPathOnThisThread;

    /// <summary>Kernel names in the module (every dtype code 0-2).</summary>
    static IEnumerable<string> Names() =>
        (from c in new[] { 0, 1, 2 }
        from n in new[] { "rms_fwd_{0}00", "rms_fwd_{0}01", "rms_fwd_{0}10", "rms_fwd_{0}11", "rms_bwd_{0}0", "rms_bwd_{0}1", "rope_{0}0", "rope_{0}1", "swiglu_{0}", "swiglu_bwd_{0}", "rope_kv_{0}", "ce_fwd_{0}", "ce_bwd_{0}" }
        select string.Format(System.Globalization.CultureInfo.InvariantCulture, n, c)).Append("adamw_step");

    /// <summary>
    /// True when <paramref name="t"/> is a CUDA tensor of a dtype the kernels take and the kernels loaded (checked once per
    /// process; the reason they did not is printed once).
    /// </summary>
    public static bool Usable(Tensor t)
    {
        if (t.device_type != DeviceType.CUDA || TensorPathOnThisThread) return false;
        if (t.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16)) return false;
        return Unavailable(t.device_index) is null;
    }

    /// <summary>Why the kernels are not used on CUDA device <paramref name="device"/>, or null when they are.</summary>
    public static string? Unavailable(int device) =>
        Environment.GetEnvironmentVariable("OSPREY_FUSED_KERNELS") == "0" ? "OSPREY_FUSED_KERNELS=0" : Module.Unavailable(device);

    static int Code(ScalarType t) => t switch
    {
        ScalarType.Float32 => 0,
        ScalarType.Float16 => 1,
        ScalarType.BFloat16 => 2,
        _ => throw new ArgumentException($"fused kernels take float32, float16 or bfloat16, not {t}"),
    };

    static long Ptr(Tensor? t) => t is null ? 0 : (long)CudaStreams.Address(t);

    static void Launch(Tensor onDevice, string name, uint grid, uint block, void** args) =>
        Module.Launch(onDevice.device_index, name, (grid, 1), block, args);

    static uint RowThreads(long dim) => (uint)Math.Clamp((dim / 4 + 31) / 32 * 32, 32, 1024);

    /// <summary>
    /// RMSNorm over the last dimension of contiguous <paramref name="x"/>: y, the float32 1/rms per row when
    /// <paramref name="keepInv"/>, and, with <paramref name="residual"/>, the rounded sum x + residual that was normed.
    /// </summary>
    public static (Tensor Y, Tensor? Sum, Tensor? Inv) RmsNorm(Tensor x, Tensor? residual, Tensor weight, double eps, bool offset, bool keepInv)
    {
        var dim = x.shape[^1];
        var rows = x.numel() / dim;
        var y = empty_like(x);
        var sum = residual is null ? null : empty_like(x);
        var inv = keepInv ? empty([.. x.shape.SkipLast(1)], dtype: ScalarType.Float32, device: x.device) : null;
        if (rows == 0) return (y, sum, inv);
        long px = Ptr(x), pr = Ptr(residual), ps = Ptr(sum), pw = Ptr(weight), py = Ptr(y), pi = Ptr(inv);
        int d = (int)dim;
        float e = (float)eps;
        void** args = stackalloc void*[] { &px, &pr, &ps, &pw, &py, &pi, &d, &e };
        Launch(x, $"rms_fwd_{Code(x.dtype)}{(offset ? 1 : 0)}{(residual is null ? 0 : 1)}", (uint)rows, RowThreads(dim), args);
        return (y, sum, inv);
    }

    /// <summary>The gradient of <see cref="RmsNorm"/> with respect to its (contiguous) input <paramref name="h"/>.</summary>
    public static Tensor RmsNormBackward(Tensor dy, Tensor h, Tensor weight, Tensor inv, bool offset)
    {
        var dim = h.shape[^1];
        var rows = h.numel() / dim;
        var dx = empty_like(h);
        if (rows == 0) return dx;
        using var dyc = dy.contiguous();
        long pdy = Ptr(dyc), ph = Ptr(h), pw = Ptr(weight), pi = Ptr(inv), pdx = Ptr(dx);
        int d = (int)dim;
        void** args = stackalloc void*[] { &pdy, &ph, &pw, &pi, &pdx, &d };
        Launch(h, $"rms_bwd_{Code(h.dtype)}{(offset ? 1 : 0)}", (uint)rows, RowThreads(dim), args);
        return dx;
    }

    /// <summary>
    /// Whether <see cref="Rope"/> takes <paramref name="x"/> [B, T, heads, D] (unit stride over D) with tables
    /// [B or 1, 1, T, rot] of its dtype (unit stride over rot).
    /// </summary>
    public static bool RopeFits(Tensor x, Tensor cos, Tensor sin) =>
        x.dim() == 4 && x.stride(3) == 1 && cos.dim() == 4 && cos.dtype == x.dtype && sin.dtype == x.dtype
        && cos.stride(3) == 1 && sin.stride(3) == 1 && cos.stride(0) == sin.stride(0) && cos.stride(2) == sin.stride(2)
        && cos.shape[2] == x.shape[1] && (cos.shape[0] == x.shape[0] || cos.shape[0] == 1) && cos.shape[3] % 2 == 0 && cos.shape[3] <= x.shape[3]
        && x.shape[1] * x.shape[0] <= int.MaxValue;

    /// <summary>
    /// RoPE over x [B, T, heads, D] (see <see cref="RopeFits"/>), written to <paramref name="output"/> (same shape, unit
    /// stride over D; x itself rotates it in place). <paramref name="inverse"/> applies the transpose: the backward pass.
    /// </summary>
    public static void Rope(Tensor x, Tensor output, Tensor cos, Tensor sin, bool inverse)
    {
        long b = x.shape[0], t = x.shape[1];
        if (b * t == 0) return;
        long px = Ptr(x), po = Ptr(output), pc = Ptr(cos), ps = Ptr(sin);
        int tt = (int)t, heads = (int)x.shape[2], d = (int)x.shape[3], rot = (int)cos.shape[3];
        long sb = x.stride(0), st = x.stride(1), sh = x.stride(2), ob = output.stride(0), ot = output.stride(1), oh = output.stride(2);
        long cb = cos.shape[0] == 1 ? 0 : cos.stride(0), ct = cos.stride(2);
        void** args = stackalloc void*[] { &px, &po, &pc, &ps, &tt, &heads, &d, &rot, &sb, &st, &sh, &ob, &ot, &oh, &cb, &ct };
        var threads = (uint)Math.Clamp((heads * (rot / 2) + 31) / 32 * 32, 32, 512);
        Launch(x, $"rope_{Code(x.dtype)}{(inverse ? 1 : 0)}", (uint)(b * t), threads, args);
    }

    /// <summary>
    /// One slot decode step: rotates the query heads of <paramref name="heads"/> [B, 1, qHeads + 2 kvHeads, D] in place
    /// and writes the rotated key heads and the value heads into <paramref name="keyCache"/> / <paramref name="valueCache"/>
    /// ([B', kvHeads, capacity, D], same strides, B' ≥ B) at row b's position <paramref name="positions"/>[b · stride(0)]
    /// (int64). Tables as <see cref="RopeFits"/> takes them. Replaces a RoPE pass and two scatters.
    /// </summary>
    public static void RopeIntoCache(Tensor heads, int qHeads, Tensor cos, Tensor sin, Tensor keyCache, Tensor valueCache, Tensor positions)
    {
        long b = heads.shape[0];
        if (b == 0) return;
        var kvHeads = (int)keyCache.shape[1];
        if (heads.shape[1] != 1 || heads.shape[2] != qHeads + 2L * kvHeads || heads.stride(3) != 1 || keyCache.stride(3) != 1
            || !keyCache.stride().SequenceEqual(valueCache.stride()) || positions.dtype != ScalarType.Int64 || keyCache.dtype != heads.dtype)
            throw new ArgumentException("RopeIntoCache: heads, caches or positions are not laid out as the kernel needs");
        long px = Ptr(heads), pc = Ptr(cos), ps = Ptr(sin), pk = Ptr(keyCache), pv = Ptr(valueCache), pp = Ptr(positions);
        int hq = qHeads, hkv = kvHeads, d = (int)heads.shape[3], rot = (int)cos.shape[3];
        long sb = heads.stride(0), sh = heads.stride(2), cb = cos.shape[0] == 1 ? 0 : cos.stride(0);
        long kb = keyCache.stride(0), kh = keyCache.stride(1), kt = keyCache.stride(2), pb = positions.stride(0);
        void** args = stackalloc void*[] { &px, &pc, &ps, &hq, &hkv, &d, &rot, &sb, &sh, &cb, &pk, &pv, &kb, &kh, &kt, &pp, &pb };
        var threads = (uint)Math.Clamp(((hq + hkv) * (rot / 2) + 31) / 32 * 32, 32, 512);
        Launch(heads, $"rope_kv_{Code(heads.dtype)}", (uint)b, threads, args);
    }

    static uint ElementwiseGrid(long total) => (uint)Math.Clamp((total + 255) / 256, 1, 65536);

    /// <summary>
    /// silu(g) * u for g, u [.., n] whose rows may be strided (the halves of a stacked gate/up output); y is a new contiguous
    /// tensor, or <paramref name="into"/> when given (contiguous, g's shape; g itself may be it: each element is read
    /// before it is written, by the same thread).
    /// </summary>
    public static Tensor SwiGlu(Tensor g, Tensor u, Tensor? into = null)
    {
        var n = g.shape[^1];
        var rows = g.numel() / n;
        var y = into ?? empty([.. g.shape], dtype: g.dtype, device: g.device);
        if (rows == 0) return y;
        long pg = Ptr(g), pu = Ptr(u), py = Ptr(y), r = rows, gs = RowStride(g), us = RowStride(u);
        int nn = (int)n;
        void** args = stackalloc void*[] { &pg, &pu, &py, &r, &nn, &gs, &us };
        Launch(g, $"swiglu_{Code(g.dtype)}", ElementwiseGrid(rows * n), 256, args);
        return y;
    }

    /// <summary>
    /// Writes the gradients of <see cref="SwiGlu"/> for g and u into <paramref name="dg"/> and <paramref name="du"/> (laid out
    /// as g and u: the halves of one stacked gradient when g and u are the halves of one stacked output).
    /// </summary>
    public static void SwiGluBackward(Tensor dy, Tensor g, Tensor u, Tensor dg, Tensor du)
    {
        var n = g.shape[^1];
        var rows = g.numel() / n;
        if (rows == 0) return;
        using var dyc = dy.contiguous();
        long pdy = Ptr(dyc), pg = Ptr(g), pu = Ptr(u), pdg = Ptr(dg), pdu = Ptr(du), r = rows, gs = RowStride(g), us = RowStride(u);
        if (RowStride(dg) != gs || RowStride(du) != us) throw new ArgumentException("gradients must be laid out as their inputs");
        int nn = (int)n;
        void** args = stackalloc void*[] { &pdy, &pg, &pu, &pdg, &pdu, &r, &nn, &gs, &us };
        Launch(g, $"swiglu_bwd_{Code(g.dtype)}", ElementwiseGrid(rows * n), 256, args);
    }

    /// <summary>
    /// Whether rows of <paramref name="t"/> [.., n] are evenly strided with unit stride inside a row (a contiguous tensor
    /// or a last-dimension slice of one), which <see cref="SwiGlu"/> needs.
    /// </summary>
    public static bool RowsEvenlyStrided(Tensor t)
    {
        if (t.stride(-1) != 1) return false;
        var rowStride = t.dim() >= 2 ? t.stride(-2) : t.shape[^1];
        var expected = rowStride;
        for (var i = (int)t.dim() - 2; i >= 0; i--)
        {
            if (t.shape[i] != 1 && t.stride(i) != expected) return false;
            expected *= t.shape[i];
        }
        return true;
    }

    /// <summary>
    /// Whether <see cref="CrossEntropy"/> takes <paramref name="logits"/>: a CUDA tensor the kernels take, [rows, V] with unit
    /// stride over V.
    /// </summary>
    public static bool CrossEntropyFits(Tensor logits) =>
        Usable(logits) && logits.dim() == 2 && logits.stride(1) == 1 && logits.shape[1] is > 0 and <= int.MaxValue;

    /// <summary>
    /// Cross-entropy of each row of <paramref name="logits"/> [rows, V] (see <see cref="CrossEntropyFits"/>) against
    /// <paramref name="targets"/> (int64 [rows]; a negative target gives 0), in float32 from the stored values without a
    /// float32 copy of the logits: the loss per row, the log-sum-exp per row (what <see cref="CrossEntropyBackward"/> needs)
    /// and each row's first largest index (argmax).
    /// </summary>
    public static (Tensor Loss, Tensor Lse, Tensor Argmax) CrossEntropy(Tensor logits, Tensor targets)
    {
        long rows = logits.shape[0];
        var lse = empty(rows, dtype: ScalarType.Float32, device: logits.device);
        var loss = empty(rows, dtype: ScalarType.Float32, device: logits.device);
        var am = empty(rows, dtype: ScalarType.Int64, device: logits.device);
        if (rows == 0) return (loss, lse, am);
        using var t = targets.to_type(ScalarType.Int64).contiguous();
        long px = Ptr(logits), rs = logits.stride(0), pt = Ptr(t), pl = Ptr(lse), pp = Ptr(loss), pa = Ptr(am), r = rows;
        int v = (int)logits.shape[1];
        void** args = stackalloc void*[] { &px, &rs, &pt, &pl, &pp, &pa, &r, &v };
        Launch(logits, $"ce_fwd_{Code(logits.dtype)}", (uint)Math.Min(rows, 1L << 20), RowThreads(v), args);
        return (loss, lse, am);
    }

    /// <summary>
    /// The gradient of <see cref="CrossEntropy"/>'s per-row losses weighted by <paramref name="weights"/> (float32 [rows]):
    /// (softmax − onehot) · weight per row, in the logits' dtype, from the <paramref name="lse"/> the forward kernel gave.
    /// </summary>
    public static Tensor CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor weights)
    {
        long rows = logits.shape[0];
        var dx = empty([rows, logits.shape[1]], dtype: logits.dtype, device: logits.device);
        if (rows == 0) return dx;
        using var t = targets.to_type(ScalarType.Int64).contiguous();
        using var w = weights.to_type(ScalarType.Float32).contiguous();
        long px = Ptr(logits), rs = logits.stride(0), pt = Ptr(t), pl = Ptr(lse), pw = Ptr(w), pd = Ptr(dx), ds = dx.stride(0), r = rows;
        int v = (int)logits.shape[1];
        void** args = stackalloc void*[] { &px, &rs, &pt, &pl, &pw, &pd, &ds, &r, &v };
        var columns = (uint)Math.Clamp((v + 1023) / 1024, 1, 64);
        Module.Launch(logits.device_index, $"ce_bwd_{Code(logits.dtype)}", (columns, (uint)Math.Min(rows, 65535)), 256, args);
        return dx;
    }

    /// <summary>Whether <see cref="AdamWStep"/> takes these buffers: contiguous float32 on one CUDA device, the kernels loaded.</summary>
    public static bool AdamWFits(Tensor master, Tensor expAvg, Tensor expAvgSq, Tensor grad) =>
        Usable(master) && new[] { master, expAvg, expAvgSq, grad }.All(t =>
            t.dtype == ScalarType.Float32 && t.is_contiguous() && t.device_type == DeviceType.CUDA && t.device_index == master.device_index
            && t.numel() == master.numel());

    /// <summary>
    /// One AdamW update of <paramref name="master"/> and its moments in place (see <see cref="AdamWFits"/>), with the
    /// tensor path's formula: p·(1 − rate·decay), m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g²,
    /// p ← p + step · m / (√v / bc2 + ε).
    /// </summary>
    public static void AdamWStep(Tensor master, Tensor expAvg, Tensor expAvgSq, Tensor grad, double keep, double beta1, double beta2,
        double bc2Sqrt, double epsilon, double step, bool decay)
    {
        long n = master.numel();
        if (n == 0) return;
        long pp = Ptr(master), pm = Ptr(expAvg), pv = Ptr(expAvgSq), pg = Ptr(grad);
        float k = (float)keep, w1 = (float)(1 - beta1), b2 = (float)beta2, c2 = (float)(1 - beta2), bc2 = 1.0f / (float)bc2Sqrt, eps = (float)epsilon, st = (float)step;
        int d = decay ? 1 : 0;
        void** args = stackalloc void*[] { &pp, &pm, &pv, &pg, &n, &k, &w1, &b2, &c2, &bc2, &eps, &st, &d };
        Launch(master, "adamw_step", (uint)Math.Clamp((n + 255) / 256, 1, 1L << 16), 256, args);
    }

    static long RowStride(Tensor t) => t.dim() >= 2 ? t.stride(-2) : t.shape[^1];
}
