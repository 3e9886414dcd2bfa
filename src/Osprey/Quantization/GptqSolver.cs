using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
/// Algorithm 1) for one weight W [out, in] given the Hessian H = 2XXᵀ [in, in] of its inputs: columns are quantized
/// one at a time and each one's error is spread over the columns not yet quantized through the upper Cholesky factor
/// of H⁻¹, in lazy blocks. The per-group min/max grid is AutoGPTQ's Quantizer. Written from the paper and the
/// published reference's steps (dead columns, act-order, dampening); two storage choices are made here: each scale is
/// rounded to float16 before it is used (checkpoints store float16 scales, so the weights GPTQ compensates for are the
/// ones written), and with the "gptq" (v1) format an asymmetric zero point is at least 1 (v1 stores zero − 1 unsigned,
/// so a zero of 0 cannot be written).
/// </summary>
internal static class GptqSolver
{
    /// <summary>Quantizes <paramref name="weight"/> [out, in] with the Hessian <paramref name="hessian"/> [in, in] (both read, not changed).</summary>
    public static GptqResult Solve(Tensor weight, Tensor hessian, GptqSettings s)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long rows = weight.shape[0], columns = weight.shape[1];
        int maxq = (1 << s.Bits) - 1;
        var groupSize = s.GroupSize <= 0 ? columns : s.GroupSize;
        if (columns % groupSize != 0) throw new OspreyException($"the layer has {columns} inputs, which is not a multiple of --group_size {groupSize}; pick a group size that divides it (or -1).");
        // float32 as the published implementation computes; a 7B's largest Hessian (18944² for Qwen2.5-7B's down_proj)
        // is then 1.4 GB a copy, and at most three copies live at once (freed as soon as the next one exists).
        var w = weight.to_type(ScalarType.Float32).clone();
        var h = hessian.to_type(ScalarType.Float32).clone();
        // The whole-row grid, used as is when there are no groups (taken before any column changes, as the reference does).
        var (rowScale, rowZero) = Grid(w, maxq, s.Sym);

        // Inputs that never fire carry no information: their column is zeroed and H gets a 1 there so it inverts.
        var diag = h.diagonal();
        var dead = diag.eq(0);
        diag.masked_fill_(dead, 1.0);
        w.masked_fill_(dead.unsqueeze(0), 0.0);

        Tensor? perm = null, invPerm = null;
        if (s.DescAct)
        {
            perm = h.diagonal().argsort(descending: true);
            w = w.index_select(1, perm);
            h = h.index_select(0, perm).index_select(1, perm);
            invPerm = perm.argsort();
        }
        var damp = s.DampPercent * h.diagonal().mean().item<float>();
        h.diagonal().add_(damp);
        // The upper Cholesky factor of H⁻¹: row i holds what quantizing column i costs the columns after it.
        var lower = linalg.cholesky(h);
        h.Dispose();
        var inverse = cholesky_inverse(lower);
        lower.Dispose();
        var upper = linalg.cholesky(inverse);
        inverse.Dispose();
        var hinv = upper.t().contiguous();
        upper.Dispose();

        var q = zeros_like(w);
        // int32 from the start (codes are whole numbers 0 … maxq, so the copy is exact): an int64 matrix would be twice
        // the weight's float32 size on the device for nothing.
        var codes = zeros(rows, columns, dtype: ScalarType.Int32, device: w.device);
        var groups = columns / groupSize;
        var scales = new Tensor[groups];
        var zeroPoints = new Tensor[groups];
        Tensor scale = rowScale, zero = rowZero;
        for (long i1 = 0; i1 < columns; i1 += s.BlockSize)
        {
            // Every block, and every column inside it, frees its temporaries at once: left to the scope of Solve they
            // were an [out, block] product per column and an [out, in] update per block, tens of GB on a 7B's
            // gate/up (37888 rows) and down_proj (18944 columns) before Solve returned.
            using var blockScope = NewDisposeScope();
            var i2 = Math.Min(i1 + s.BlockSize, columns);
            var count = i2 - i1;
            var w1 = w.narrow(1, i1, count).clone();
            var err1 = zeros(rows, count, dtype: w.dtype, device: w.device);
            var hinv1 = hinv.narrow(0, i1, count).narrow(1, i1, count);
            for (long i = 0; i < count; i++)
            {
                var column = i1 + i;
                if (s.GroupSize > 0 && column % groupSize == 0)
                {
                    // The reference takes the group's grid from W as updated up to the current block (not W1).
                    (scale, zero) = Grid(w.narrow(1, column, groupSize), maxq, s.Sym);
                    // Kept past the block: they are the group's stored scales and zero points.
                    scales[column / groupSize] = scale.MoveToOuterDisposeScope();
                    zeroPoints[column / groupSize] = zero.MoveToOuterDisposeScope();
                }
                using var columnScope = NewDisposeScope();
                var wi = w1.select(1, i);
                var d = hinv1[i, i];
                var code = wi.div(scale).round().add(zero).clamp(0, maxq);
                var qi = code.sub(zero).mul(scale);
                q.select(1, column).copy_(qi);
                codes.select(1, column).copy_(code);
                var e = wi.sub(qi).div(d);
                w1.narrow(1, i, count - i).sub_(e.unsqueeze(1).matmul(hinv1.narrow(0, i, 1).narrow(1, i, count - i)));
                err1.select(1, i).copy_(e);
            }
            if (i2 < columns) w.narrow(1, i2, columns - i2).sub_(err1.matmul(hinv.narrow(0, i1, count).narrow(1, i2, columns - i2)));
        }
        if (s.GroupSize <= 0)
        {
            scales[0] = rowScale;
            zeroPoints[0] = rowZero;
        }
        // Group g holds columns g·size … of the (possibly permuted) order; g_idx maps each original column to its group.
        var gIdx = arange(columns, dtype: ScalarType.Int64, device: w.device).div(groupSize, rounding_mode: RoundingMode.floor);
        if (invPerm is not null)
        {
            q = q.index_select(1, invPerm);
            codes = codes.index_select(1, invPerm);
            gIdx = gIdx.index_select(0, invPerm);
        }
        var result = new GptqResult(
            codes.to_type(ScalarType.Int32),
            stack(scales, 0).to_type(ScalarType.Float32),
            stack(zeroPoints, 0).to_type(ScalarType.Int32),
            gIdx.to_type(ScalarType.Int32),
            q.to_type(ScalarType.Float32));
        foreach (var t in new[] { result.Codes, result.Scales, result.Zeros, result.GroupIndex, result.Dequantized }) t.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// AutoGPTQ's per-row min/max grid over <paramref name="x"/> [out, n]: the range always contains 0; symmetric grids
    /// are centred at (maxq + 1) / 2. Returns scale [out] (rounded to float16) and zero [out] (whole numbers) in x's dtype.
    /// </summary>
    internal static (Tensor Scale, Tensor Zero) Grid(Tensor x, int maxq, bool sym)
    {
        var xmin = x.amin([1]).clamp_max(0);
        var xmax = x.amax([1]).clamp_min(0);
        if (sym)
        {
            xmax = maximum(xmin.abs(), xmax);
            xmin = where(xmin.lt(0), xmax.neg(), xmin);
        }
        var empty = xmin.eq(0).logical_and(xmax.eq(0));
        xmin = xmin.masked_fill(empty, -1.0);
        xmax = xmax.masked_fill(empty, 1.0);
        // float16 keeps 2^-24 as its smallest step: a scale below it would be stored as 0.
        var scale = xmax.sub(xmin).div(maxq).to_type(ScalarType.Float16).to_type(x.dtype).clamp_min(Math.ScaleB(1.0, -24));
        var zero = sym
            ? full_like(scale, (maxq + 1) / 2)
            : xmin.neg().div(scale).round().clamp(1, maxq);
        return (scale, zero);
    }

    /// <summary>
    /// Round-to-nearest on the same grid (the groups' min/max, columns in their natural order, no error feedback): the
    /// baseline GPTQ is measured against. Returns the dequantized weight [out, in] float32.
    /// </summary>
    public static Tensor RoundToNearest(Tensor weight, GptqSettings s)
    {
        using var scope = NewDisposeScope();
        var w = weight.to_type(ScalarType.Float32);
        long columns = w.shape[1];
        var size = s.GroupSize <= 0 ? columns : s.GroupSize;
        var maxq = (1 << s.Bits) - 1;
        var parts = new List<Tensor>();
        for (long c = 0; c < columns; c += size)
        {
            var g = w.narrow(1, c, size);
            var (scale, zero) = Grid(g, maxq, s.Sym);
            var code = g.div(scale.unsqueeze(1)).round().add(zero.unsqueeze(1)).clamp(0, maxq);
            parts.Add(code.sub(zero.unsqueeze(1)).mul(scale.unsqueeze(1)));
        }
        return cat(parts, 1).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
