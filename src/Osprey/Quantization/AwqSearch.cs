using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and Acceleration"), written from
/// the paper and AutoAWQ's published steps: 4-bit asymmetric group quantization, a grid search for per-input-channel
/// scales s = mean|x|^α (α = 0, 1/20, …, 19/20, normalised by √(max s · min s)) that minimises the error of the
/// linear group's output on calibration inputs when W·diag(s) is quantized and the inputs are divided by s, and a search
/// for the clipping range of each group of weights (shrinking max|w| by up to half in 20ths). All float32.
/// </summary>
internal static class AwqSearch
{
    /// <summary>The scale grid: 20 exponents α = i / 20.</summary>
    public const int Grid = 20;

    /// <summary>
    /// AutoAWQ's pseudo-quantization of w [out, in] in groups of <paramref name="groupSize"/> inputs (4 bits, zero point):
    /// codes int64 [out, in], scales [groups, out] (rounded to float16, as stored), zeros int64 [groups, out], and the
    /// dequantized weight [out, in].
    /// </summary>
    public static (Tensor Codes, Tensor Scales, Tensor Zeros, Tensor Dequantized) Quantize(Tensor w, int groupSize)
    {
        using var scope = NewDisposeScope();
        var (codes, scales, zeros, dq) = QuantizeGroups(w, groupSize);
        var result = (codes.reshape(w.shape[0], w.shape[1]).to_type(ScalarType.Int64), scales.squeeze(2).t().contiguous(), zeros.squeeze(2).t().to_type(ScalarType.Int64).contiguous(), dq);
        result.Item1.MoveToOuterDisposeScope();
        result.Item2.MoveToOuterDisposeScope();
        result.Item3.MoveToOuterDisposeScope();
        result.dq.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// The quantization itself: codes [out, groups, size] (float32), scales and zeros [out, groups, 1] and the dequantized
    /// [out, in]. In-place steps after the first division, so the device holds about three copies of w rather than one
    /// per operation (the values are the same either way).
    /// </summary>
    static (Tensor Codes, Tensor Scales, Tensor Zeros, Tensor Dequantized) QuantizeGroups(Tensor w, int groupSize)
    {
        long rows = w.shape[0], cols = w.shape[1];
        var size = groupSize <= 0 ? cols : groupSize;
        var g = w.to_type(ScalarType.Float32).reshape(rows, cols / size, size);
        var max = g.amax([2], keepdim: true);
        var min = g.amin([2], keepdim: true);
        var scales = max.sub(min).clamp_min(1e-5).div(15).to_type(ScalarType.Float16).to_type(ScalarType.Float32);
        var zeros = min.div(scales).round().neg().clamp(0, 15);
        var codes = g.div(scales).round_().add_(zeros).clamp_(0, 15);
        var dq = codes.sub(zeros).mul_(scales).reshape(rows, cols);
        return (codes, scales, zeros, dq);
    }

    static Tensor Dequantized(Tensor w, int groupSize)
    {
        using var scope = NewDisposeScope();
        return QuantizeGroups(w, groupSize).Dequantized.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The per-input-channel scales [in] for the weight <paramref name="w"/> [out, in] (the group's linears stacked by
    /// rows) given calibration inputs <paramref name="x"/> [n, in] and the mean |x| per channel over all calibration
    /// tokens. α = 0 (all ones, plain round-to-nearest) is on the grid, so the result is never worse on <paramref name="x"/>.
    /// The loss (mean squared error, summed in float64) is taken <paramref name="chunkRows"/> tokens at a time.
    /// </summary>
    public static Tensor SearchScales(Tensor w, Tensor x, Tensor xMean, int groupSize, long chunkRows = ChunkRows)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var wf = w.to_type(ScalarType.Float32);
        var xf = x.to_type(ScalarType.Float32);
        var reference = xf.matmul(wf.t());
        var mean = xMean.to_type(ScalarType.Float32);
        Tensor best = ones_like(mean);
        var bestLoss = double.PositiveInfinity;
        long n = xf.shape[0], chunk = Math.Max(1, chunkRows);
        for (var i = 0; i < Grid; i++)
        {
            using var step = NewDisposeScope();
            var ratio = (double)i / Grid;
            var s = mean.pow(ratio).clamp_min(1e-4);
            s = s.div(s.max().mul(s.min()).sqrt());
            var q = Dequantized(wf.mul(s), groupSize).div_(s);
            // The squared error over chunks of tokens (AutoAWQ bounds this step's memory the same way): the device holds
            // [chunk, out] at a time besides the reference output, not the whole [tokens, out] product and its difference.
            var sum = 0.0;
            for (long r0 = 0; r0 < n; r0 += chunk)
            {
                using var part = NewDisposeScope();
                var count = Math.Min(chunk, n - r0);
                var diff = xf.narrow(0, r0, count).matmul(q.t()).sub_(reference.narrow(0, r0, count));
                sum += diff.pow_(2).sum().to_type(ScalarType.Float64).item<double>();
            }
            var loss = sum / Math.Max(1, reference.numel());
            if (loss < bestLoss)
            {
                bestLoss = loss;
                best = s.MoveToOuterDisposeScope();
            }
        }
        return best.MoveToOuterDisposeScope();
    }

    /// <summary>Token rows per chunk of <see cref="SearchScales"/>'s loss (a 7B's 37888 stacked gate/up outputs: 150 MB a chunk).</summary>
    public const long ChunkRows = 1024;

    /// <summary>Bytes one row batch of <see cref="SearchClip"/>'s [rows, tokens, in] product may take.</summary>
    public const long ClipBatchBytes = 256L << 20;

    /// <summary>
    /// The clipping bound [out, groups] for each group of <paramref name="w"/> [out, in]: max|w| of the group shrunk by
    /// 0 … 9/20, whichever gives the smallest mean squared error of that group's partial output x_g·w_g on
    /// <paramref name="x"/> [n, in] (up to 512 evenly spaced tokens are used, as AutoAWQ does), <paramref name="rowBatch"/>
    /// output rows at a time (0: as many as fit <see cref="ClipBatchBytes"/>, at most 64).
    /// </summary>
    public static Tensor SearchClip(Tensor w, Tensor x, int groupSize, long rowBatch = 0)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long rows = w.shape[0], cols = w.shape[1];
        var size = groupSize <= 0 ? cols : groupSize;
        var groups = cols / size;
        var step = Math.Max(1, x.shape[0] / 512);
        var xs = x.to_type(ScalarType.Float32).slice(0, 0, x.shape[0], step);
        var input = xs.reshape(1, xs.shape[0], groups, size);                    // [1, n, g, size]
        var bounds = new List<Tensor>();
        // Each batch of output rows makes a [rows, n, in] float32 product: sized to ClipBatchBytes (AutoAWQ takes 64 or
        // 256 rows whatever the width: 2.5 GB or more for a 7B's down_proj). Rows are independent, so the batch size
        // changes no bound.
        var batch = rowBatch > 0 ? rowBatch : Math.Clamp(ClipBatchBytes / (4 * xs.shape[0] * cols), 1, 64);
        for (long r0 = 0; r0 < rows; r0 += batch)
        {
            // The batch's tensors go when it ends; only its bounds stay (they were all kept until the search returned,
            // which ran a 7B's gate/up search out of memory on an 80 GB card).
            using var batchScope = NewDisposeScope();
            var count = Math.Min(batch, rows - r0);
            var wb = w.narrow(0, r0, count).to_type(ScalarType.Float32).reshape(count, 1, groups, size);
            var original = wb.abs().amax([3], keepdim: true);                  // [count, 1, g, 1]
            var best = original.clone();
            var bestErr = full_like(original, double.PositiveInfinity);
            var reference = input.mul(wb).sum(3);                               // [count, n, g]
            for (var i = 0; i < Grid / 2; i++)
            {
                using var inner = NewDisposeScope();
                var bound = original.mul(1.0 - (double)i / Grid);
                var clipped = minimum(maximum(wb, bound.neg()), bound);
                var q = Dequantized(clipped.reshape(count, cols), groupSize).reshape(count, 1, groups, size);
                var err = input.mul(q).sum(3).sub(reference).square().mean([1], keepdim: true).unsqueeze(3); // [count, 1, g, 1]
                var better = err.lt(bestErr);
                bestErr.copy_(where(better, err, bestErr));
                best.copy_(where(better, bound, best));
            }
            bounds.Add(best.reshape(count, groups).MoveToOuterDisposeScope());
        }
        return cat(bounds, 0).MoveToOuterDisposeScope();
    }

    /// <summary>w [out, in] clamped to ±<paramref name="bounds"/> [out, groups] group by group.</summary>
    public static Tensor Clip(Tensor w, Tensor bounds, int groupSize)
    {
        long rows = w.shape[0], cols = w.shape[1];
        var size = groupSize <= 0 ? cols : groupSize;
        using var scope = NewDisposeScope();
        var b = bounds.to_type(ScalarType.Float32).repeat_interleave(size, 1);
        return minimum(maximum(w.to_type(ScalarType.Float32), b.neg()), b).MoveToOuterDisposeScope();
    }
}
