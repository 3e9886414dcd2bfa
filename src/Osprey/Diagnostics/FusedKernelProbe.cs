using System.Diagnostics;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Diagnostics;

/// <summary>
/// Checks the fused CUDA kernels (<see cref="FusedKernels"/>) against the tensor-op path they replace, through the same
/// modules the models use (the tensor path is taken by switching the kernels off on this thread), forward and backward,
/// in float32, float16 and bfloat16; and times both at a 7B model's shapes. <c>osprey kernel-probe --fused true</c>
/// prints what it returns.
/// </summary>
public static class FusedKernelProbe
{
    /// <summary>Why the fused kernels can't run here, or null when they can (CUDA device 0).</summary>
    public static string? Unavailable() => FusedKernels.Unavailable(0);

    static (double Relative, long Mismatched, long Elements) Compare(Tensor fused, Tensor reference)
    {
        using var scope = NewDisposeScope();
        var f = fused.to_type(ScalarType.Float64);
        var r = reference.to_type(ScalarType.Float64);
        var scale = Math.Max(r.abs().max().item<double>(), 1e-30);
        return ((f - r).abs().max().item<double>() / scale, f.ne(r).sum().item<long>(), f.numel());
    }

    static T OnTensorPath<T>(Func<T> run)
    {
        FusedKernels.TensorPathOnThisThread = true;
        try { return run(); }
        finally { FusedKernels.TensorPathOnThisThread = false; }
    }

    static Tensor Grad(Tensor leaf) => leaf.grad ?? throw new InvalidOperationException("no gradient reached the input");

    /// <summary>Every kernel, forward and backward, for each dtype; see <see cref="FusedKernelCheck"/>.</summary>
    public static IReadOnlyList<FusedKernelCheck> Check()
    {
        var autograd = FusedKernels.Autograd;
        FusedKernels.Autograd = true; // the backward kernels are what is checked, whatever training uses by default
        try { return CheckAll(); }
        finally { FusedKernels.Autograd = autograd; }
    }

    static IReadOnlyList<FusedKernelCheck> CheckAll()
    {
        var device = new Device(DeviceType.CUDA, 0);
        var results = new List<FusedKernelCheck>();
        using var gen = new Generator(11, CPU); // TorchSharp's generators are CPU ones: draw on the CPU, then move
        Tensor Rand(params long[] shape) => randn(shape, generator: gen).to(device);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16 })
        {
            var name = DTypes.Name(dtype);
            // One rounding of the dtype, relative to the largest value: where the sum of squares is added in another order.
            var ulp = dtype == ScalarType.Float32 ? 1e-5 : dtype == ScalarType.Float16 ? 2e-3 : 1.6e-2;
            // Gradients: the tensor path rounds each intermediate to the dtype, the kernels keep float32 inside.
            var gradLimit = dtype == ScalarType.Float32 ? 1e-4 : 4e-2;
            void Add(string kernel, (double Relative, long Mismatched, long Elements) c, double limit) =>
                results.Add(new FusedKernelCheck(kernel, name, c.Elements, c.Mismatched, c.Relative, limit));
            // A check that throws is a failed row (NaN error), so one broken kernel does not hide the others' results.
            void Try(string kernel, Func<(double, long, long)> compare, double limit)
            {
                try { Add(kernel, compare(), limit); }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    Console.Error.WriteLine($"{kernel} ({name}): {e.Message.Split('\n')[0]}");
                    Add(kernel, (double.NaN, -1, 0), limit);
                }
            }

            foreach (var offset in new[] { false, true })
            {
                using var scope = NewDisposeScope();
                var label = offset ? "rmsnorm (1+w)" : "rmsnorm";
                using var norm = new RmsNorm(896, 1e-6, offset, dtype, device);
                var weight = norm.parameters().Single();
                using (no_grad()) weight.copy_(Rand(896) * 0.5 + 1.0);
                var x = Rand(4, 7, 896).to_type(dtype);
                var a = Rand(4, 7, 896).to_type(dtype);
                using (no_grad())
                {
                    Add(label, Compare(norm.forward(x), OnTensorPath(() => norm.forward(x))), ulp);
                    var (yf, sf) = norm.ForwardWithResidual(x, a);
                    var (yt, st) = OnTensorPath(() => norm.ForwardWithResidual(x, a));
                    Add(label + " + residual", Compare(yf, yt), ulp);
                    Add(label + " + residual (sum)", Compare(sf, st), 0);
                }
                // Backward, with the weight trained (full fine-tuning) so both gradients are checked.
                var r = Rand(4, 7, 896);
                (Tensor Dx, Tensor Dw) Backward()
                {
                    var leaf = x.detach().requires_grad_(true);
                    weight.requires_grad_(true);
                    weight.grad?.zero_();
                    using (var loss = (norm.forward(leaf).to_type(ScalarType.Float32) * r).sum()) loss.backward();
                    var dw = Grad(weight).clone();
                    weight.requires_grad_(false);
                    return (Grad(leaf).clone(), dw);
                }
                (Tensor, Tensor)? fusedGrads = null, tensorGrads = null;
                Try(label + " backward (x)", () =>
                {
                    fusedGrads = Backward();
                    tensorGrads = OnTensorPath(Backward);
                    return Compare(fusedGrads.Value.Item1, tensorGrads.Value.Item1);
                }, gradLimit);
                Try(label + " backward (w)", () => fusedGrads is null ? throw new InvalidOperationException("no gradients") : Compare(fusedGrads.Value.Item2, tensorGrads!.Value.Item2), gradLimit);
                DequantizedLinear.ReleaseHandedBack();
            }

            foreach (var rot in new[] { 64, 32 })
            {
                using var scope = NewDisposeScope();
                var label = rot == 64 ? "rope" : "rope (partial)";
                // 6 of 8 heads of a stacked projection output, as attention hands them over; tables as RotaryEmbedding makes them.
                var stacked = Rand(2, 9, 8, 64).to_type(dtype);
                var angles = Rand(2, 1, 9, rot / 2) * 3;
                var emb = cat([angles, angles], -1);
                var (cos, sin) = (emb.cos().to_type(dtype), emb.sin().to_type(dtype));
                using (no_grad())
                {
                    var heads = stacked.narrow(2, 0, 6);
                    var reference = OnTensorPath(() => RotaryEmbedding.ApplyHeadsLast(heads, cos, sin, mayOverwrite: false));
                    Add(label, Compare(RotaryEmbedding.ApplyHeadsLast(heads, cos, sin, mayOverwrite: false), reference), 0);
                    var copy = stacked.clone();
                    Add(label + " in place", Compare(RotaryEmbedding.ApplyHeadsLast(copy.narrow(2, 0, 6), cos, sin, mayOverwrite: true), reference), 0);
                }
                var r = Rand(2, 6, 9, 64);
                Tensor Backward()
                {
                    var leaf = stacked.detach().requires_grad_(true);
                    using (var loss = (RotaryEmbedding.ApplyHeadsLast(leaf.narrow(2, 0, 6), cos, sin, mayOverwrite: false).to_type(ScalarType.Float32) * r).sum())
                        loss.backward();
                    return Grad(leaf).clone();
                }
                Try(label + " backward", () => Compare(Backward(), OnTensorPath(Backward)), gradLimit);
                DequantizedLinear.ReleaseHandedBack();
            }

            foreach (var rot in new[] { 64, 32 })
            {
                // A serving slot step: 3 rows of [1 position, 4 query + 2 key + 2 value heads of 64], caches of 5 rows x 7 slots.
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                var label = rot == 64 ? "rope + kv-cache write" : "rope + kv-cache write (partial)";
                var stacked = Rand(3, 1, 8, 64).to_type(dtype);
                var angles = Rand(3, 1, 1, rot / 2) * 3;
                var emb = cat([angles, angles], -1);
                var (cos, sin) = (emb.cos().to_type(dtype), emb.sin().to_type(dtype));
                var keys = Rand(5, 2, 7, 64).to_type(dtype);
                var values = Rand(5, 2, 7, 64).to_type(dtype);
                var positions = tensor(new long[] { 4, 0, 6 }, device: device);
                var index = positions.view(3, 1, 1, 1).expand(3, 2, 1, 64).contiguous();
                // The tensor path: RoPE on the query and key heads, then the two scatters KvCache.Append does.
                var rotated = OnTensorPath(() => RotaryEmbedding.ApplyHeadsLast(stacked.narrow(2, 0, 6), cos, sin, mayOverwrite: false));
                var (refKeys, refValues) = (keys.clone(), values.clone());
                refKeys.narrow(0, 0, 3).scatter_(2, index, rotated.narrow(1, 4, 2));
                refValues.narrow(0, 0, 3).scatter_(2, index, stacked.narrow(2, 6, 2).transpose(1, 2));
                var heads = stacked.clone();
                FusedKernels.RopeIntoCache(heads, 4, cos, sin, keys.narrow(0, 0, 3), values.narrow(0, 0, 3), index);
                Add(label + " (q)", Compare(heads.narrow(2, 0, 4).transpose(1, 2), rotated.narrow(1, 0, 4)), 0);
                Add(label + " (k cache)", Compare(keys, refKeys), 0);
                Add(label + " (v cache)", Compare(values, refValues), 0);
            }

            {
                using var scope = NewDisposeScope();
                var stacked = (Rand(3, 5, 256) * 3).to_type(dtype);
                using (no_grad())
                {
                    var (g, u) = (stacked.narrow(-1, 0, 128), stacked.narrow(-1, 128, 128));
                    Add("swiglu", Compare(FusedKernels.SwiGlu(g, u), nn.functional.silu(g) * u), 0);
                }
                var r = Rand(3, 5, 128);
                Tensor Backward(bool fused)
                {
                    var leaf = stacked.detach().requires_grad_(true);
                    var y = fused ? FusedSwiGluFunction.apply(leaf, null!) : nn.functional.silu(leaf.narrow(-1, 0, 128)) * leaf.narrow(-1, 128, 128);
                    using (var loss = (y.to_type(ScalarType.Float32) * r).sum()) loss.backward();
                    return Grad(leaf).clone();
                }
                Try("swiglu backward (stacked)", () => Compare(Backward(true), Backward(false)), gradLimit);
                Tensor BackwardPair(bool fused)
                {
                    var g = stacked.narrow(-1, 0, 128).detach().requires_grad_(true);
                    var u = stacked.narrow(-1, 128, 128).detach().requires_grad_(true);
                    var y = fused ? FusedSwiGluFunction.apply(g, u) : nn.functional.silu(g) * u;
                    using (var loss = (y.to_type(ScalarType.Float32) * r).sum()) loss.backward();
                    return cat([Grad(g), Grad(u)], -1);
                }
                Try("swiglu backward (pair)", () => Compare(BackwardPair(true), BackwardPair(false)), gradLimit);
                DequantizedLinear.ReleaseHandedBack();
            }

            // AdamW over flat float32 buffers (training's optimizer step), with and without weight decay, at the third step.
            foreach (var decay in dtype == ScalarType.Float32 ? new[] { 0.0, 0.1 } : [])
            {
                using var scope = NewDisposeScope();
                var p = Rand(1_000_003);
                var m = Rand(1_000_003) * 0.1;
                var v = Rand(1_000_003).square() * 0.01;
                var g = Rand(1_000_003);
                (Tensor, Tensor, Tensor) Run()
                {
                    var (pc, mc, vc) = (p.clone(), m.clone(), v.clone());
                    AdamWUpdate.Apply(pc, mc, vc, g, 1e-3, decay, 1 - Math.Pow(0.9, 3), Math.Sqrt(1 - Math.Pow(0.999, 3)), 0.9, 0.999, 1e-8);
                    return (pc, mc, vc);
                }
                var label = decay == 0 ? "adamw" : "adamw (weight decay)";
                (Tensor P, Tensor M, Tensor V)? fused = null, reference = null;
                Try(label + " (weights)", () =>
                {
                    using var _ = no_grad();
                    fused = Run();
                    reference = OnTensorPath(Run);
                    return Compare(fused.Value.P, reference.Value.P);
                }, 1e-6);
                Try(label + " (moments)", () => fused is null ? throw new InvalidOperationException("no update")
                    : Compare(cat([fused.Value.M, fused.Value.V]), cat([reference!.Value.M, reference.Value.V])), 1e-6);
            }

            // The training loss head: a 7B-sized vocabulary over a few rows (1,024 threads per row), and more rows than a
            // grid's y dimension holds (65,535) over a small one. Reference: the float32 copy and cross_entropy the tensor
            // path runs; its loss and argmax are float32 math either way (only the summation order differs).
            foreach (var (rows, vocab) in new[] { (6L, 151936L), (70000L, 40L) })
            {
                using var scope = NewDisposeScope();
                var label = $"cross-entropy {rows}x{vocab}";
                var logits = (Rand(rows, vocab) * 4).to_type(dtype);
                var target = randint(vocab, [rows], generator: gen).to(device);
                var weights = Rand(rows);
                Try(label, () =>
                {
                    using var _ = no_grad();
                    var (loss, _, _) = FusedKernels.CrossEntropy(logits, target);
                    return Compare(loss, nn.functional.cross_entropy(logits.to_type(ScalarType.Float32), target, reduction: nn.Reduction.None));
                }, 1e-5);
                Try(label + " (argmax)", () =>
                {
                    using var _ = no_grad();
                    return Compare(FusedKernels.CrossEntropy(logits, target).Argmax, logits.argmax(-1));
                }, 0);
                Try(label + " backward", () =>
                {
                    Tensor fused;
                    using (no_grad())
                    {
                        var (_, lse, _) = FusedKernels.CrossEntropy(logits, target);
                        fused = FusedKernels.CrossEntropyBackward(logits, target, lse, weights);
                    }
                    var leaf = logits.detach().requires_grad_(true);
                    using (var loss = (nn.functional.cross_entropy(leaf.to_type(ScalarType.Float32), target, reduction: nn.Reduction.None) * weights).sum())
                        loss.backward();
                    return Compare(fused, Grad(leaf));
                }, gradLimit);
            }
        }

        return results;
    }

    /// <summary>Each kernel against its tensor ops in bfloat16 at a 7B model's shapes (hidden 3584, 28 + 4 + 4 heads of 128, MLP 18944).</summary>
    public static IReadOnlyList<FusedKernelTiming> Time(long rows, int iterations = 50)
    {
        var device = new Device(DeviceType.CUDA, 0);
        using var scope = NewDisposeScope();
        using var gen = new Generator(5, CPU);
        Tensor Rand(params long[] shape) => randn(shape, generator: gen).to(device).to_type(ScalarType.BFloat16);
        double Ms(Action a) => KernelProbe.Milliseconds(device, iterations, a);
        double Both(Action a, out double tensorOps)
        {
            FusedKernels.TensorPathOnThisThread = true;
            try { tensorOps = Ms(a); }
            finally { FusedKernels.TensorPathOnThisThread = false; }
            return Ms(a);
        }
        var results = new List<FusedKernelTiming>();
        using var _ = no_grad();
        using var norm = new RmsNorm(3584, 1e-6, false, ScalarType.BFloat16, device);
        using (no_grad()) norm.parameters().Single().fill_(1.0);
        var h = Rand(rows, 3584);
        var a = Rand(rows, 3584);
        var fused = Both(() => { var (y, s) = norm.ForwardWithResidual(h, a); y.Dispose(); s.Dispose(); }, out var tensor);
        results.Add(new FusedKernelTiming("residual add + rmsnorm", rows, tensor, fused));
        var qkv = Rand(1, rows, 36, 128);
        var angles = randn([1, 1, rows, 64], generator: gen).to(device);
        var emb = cat([angles, angles], -1);
        var (cos, sin) = (emb.cos().to_type(ScalarType.BFloat16), emb.sin().to_type(ScalarType.BFloat16));
        fused = Both(() => { using var r = RotaryEmbedding.ApplyHeadsLast(qkv.narrow(2, 0, 32), cos, sin, mayOverwrite: true); }, out tensor);
        results.Add(new FusedKernelTiming("rope (q and k heads)", rows, tensor, fused));
        var gu = Rand(rows, 2 * 18944);
        using var gate = gu.narrow(-1, 0, 18944);
        using var up = gu.narrow(-1, 18944, 18944);
        tensor = Ms(() => { using var act = nn.functional.silu(gate); using var y = act * up; });
        fused = Ms(() => { using var y = FusedKernels.SwiGlu(gate, up); });
        results.Add(new FusedKernelTiming("swiglu", rows, tensor, fused));
        // The loss head over a 7B's vocabulary, forward and backward (the gradient for the head's matrix product).
        var logits = Rand(rows, 152064);
        var target = randint(152064, [rows], generator: gen).to(device);
        var weights = ones(rows, device: device);
        tensor = Ms(() =>
        {
            using var inner = NewDisposeScope();
            using var grad = enable_grad();
            var leaf = logits.detach().requires_grad_(true);
            nn.functional.cross_entropy(leaf.to_type(ScalarType.Float32), target, reduction: nn.Reduction.Sum).backward();
        });
        fused = Ms(() =>
        {
            using var inner = NewDisposeScope();
            var (_, lse, _) = FusedKernels.CrossEntropy(logits, target);
            FusedKernels.CrossEntropyBackward(logits, target, lse, weights);
        });
        results.Add(new FusedKernelTiming("cross-entropy + backward (vocab 152,064)", rows, tensor, fused));
        return results;
    }
}
