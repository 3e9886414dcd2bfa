using TorchSharp;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Rotary position embedding tables for one <see cref="RopeSettings"/>. Inverse frequencies follow the
/// transformers formulas (default, linear, llama3) computed in float32 with the same operations, so the
/// angles match bit for bit; rotation uses the rotate-half convention of Hugging Face checkpoints.
/// </summary>
internal sealed class RotaryEmbedding : IDisposable
{
    readonly Tensor _invFreq; // [rotary/2], float32
    readonly Tensor? _mropeRow; // M-RoPE: per frequency, which position row (0 t, 1 h, 2 w) drives it; int64 [rotary/2]

    /// <summary>Width of the rotated part of each head.</summary>
    public int RotaryDim { get; }

    /// <summary>Whether this is M-RoPE (three position rows).</summary>
    internal bool MultiSection => _mropeRow is not null;

    /// <summary>Builds the inverse frequencies for heads of width <paramref name="headDim"/>.</summary>
    public RotaryEmbedding(RopeSettings rope, int headDim, Device device)
    {
        RotaryDim = (int)(headDim * rope.PartialRotaryFactor);
        if (RotaryDim % 2 != 0 || RotaryDim <= 0)
            throw new OspreyException($"RoPE over {RotaryDim} of {headDim} head dimensions is not supported; partial_rotary_factor must give an even width.");
        using var scope = NewDisposeScope();
        var exponent = arange(0, RotaryDim, 2, dtype: ScalarType.Int64, device: device).to_type(ScalarType.Float32) / RotaryDim;
        var inv = full(exponent.shape, rope.Theta, dtype: ScalarType.Float32, device: device).pow(exponent).reciprocal();
        if (rope.Type == "linear")
        {
            inv = inv / rope.Factor;
        }
        else if (rope.Type == "llama3")
        {
            // Llama 3.1: long wavelengths are divided by factor, short ones kept, a smooth ramp between.
            var lowFreqWavelen = rope.OriginalMaxPositionEmbeddings / rope.LowFreqFactor;
            var highFreqWavelen = rope.OriginalMaxPositionEmbeddings / rope.HighFreqFactor;
            var wavelen = inv.reciprocal() * (2 * Math.PI);
            var scaled = where(wavelen > lowFreqWavelen, inv / rope.Factor, inv);
            var smooth = (wavelen.reciprocal() * rope.OriginalMaxPositionEmbeddings - rope.LowFreqFactor) / (rope.HighFreqFactor - rope.LowFreqFactor);
            var smoothed = (1.0 - smooth) * scaled / rope.Factor + smooth * scaled;
            var medium = (wavelen < highFreqWavelen).logical_not().logical_and((wavelen > lowFreqWavelen).logical_not());
            inv = where(medium, smoothed, scaled);
        }
        _invFreq = inv.contiguous().MoveToOuterDisposeScope();
        if (rope.MropeSection is { } section)
        {
            if (section.Count != 3 || section.Sum() != RotaryDim / 2)
                throw new OspreyException($"mrope_section [{string.Join(", ", section)}] must be three numbers adding up to half the rotary width ({RotaryDim / 2}); fix rope_parameters in config.json.");
            var rows = section.SelectMany((n, i) => Enumerable.Repeat((long)i, n)).ToArray();
            _mropeRow = tensor(rows, dtype: ScalarType.Int64, device: device).MoveToOuterDisposeScope();
        }
    }

    /// <summary>cos and sin tables [B, 1, T, rotary] in <paramref name="dtype"/> for positions [B, T], or, with M-RoPE,
    /// [3, B, T] (temporal, height, width rows; [B, T] then means the same position in all three).</summary>
    public (Tensor Cos, Tensor Sin) Tables(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        Tensor freqs;
        if (positions.dim() == 3)
        {
            if (_mropeRow is null) throw new ArgumentException("three position rows need M-RoPE (mrope_section in config.json)");
            // As transformers' apply_multimodal_rotary_pos_emb: frequency j takes its angle from row section(j).
            var all = positions.to_type(ScalarType.Float32).unsqueeze(-1) * _invFreq; // [3, B, T, rotary/2]
            var pick = _mropeRow.view(1, 1, 1, -1).expand(1, all.shape[1], all.shape[2], -1);
            freqs = all.gather(0, pick).squeeze(0);
        }
        else freqs = positions.to_type(ScalarType.Float32).unsqueeze(-1) * _invFreq; // [B, T, rotary/2]
        var emb = cat([freqs, freqs], -1).unsqueeze(1);
        var cos = emb.cos().to_type(dtype);
        var sin = emb.sin().to_type(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Rotates x [B, T, heads, D] (unit stride over D) and returns it as [B, heads, T, D]. On CUDA one fused kernel does it
    /// (with autograd when x needs gradients); <paramref name="mayOverwrite"/> lets it rotate x in place when nothing needs
    /// gradients, so the result is then a view of x. Elsewhere <see cref="Apply"/> runs on the transposed view.
    /// </summary>
    public static Tensor ApplyHeadsLast(Tensor x, Tensor cos, Tensor sin, bool mayOverwrite)
    {
        var training = is_grad_enabled() && x.requires_grad;
        if (FusedKernels.Usable(x) && FusedKernels.RopeFits(x, cos, sin) && (!training || FusedKernels.Autograd))
        {
            if (training)
            {
                using var r = FusedRopeFunction.apply(x, cos, sin);
                return r.transpose(1, 2);
            }
            if (mayOverwrite)
            {
                FusedKernels.Rope(x, x, cos, sin, inverse: false);
                return x.transpose(1, 2);
            }
            using var output = empty([.. x.shape], dtype: x.dtype, device: x.device);
            FusedKernels.Rope(x, output, cos, sin, inverse: false);
            return output.transpose(1, 2);
        }
        using var t = x.transpose(1, 2);
        return Apply(t, cos, sin);
    }

    /// <summary>Rotates [B, H, T, D] by the tables (only the first <see cref="RotaryDim"/> dims when partial).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var rot = cos.shape[^1];
        var d = x.shape[^1];
        if (rot == d) return Rotate(x, cos, sin);
        using var xr = x.narrow(-1, 0, rot);
        using var pass = x.narrow(-1, rot, d - rot);
        using var rotated = Rotate(xr, cos, sin);
        return cat([rotated, pass], -1);
    }

    // x * cos + rotate_half(x) * sin, disposing each temporary once used.
    static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        var half = x.shape[^1] / 2;
        using var a = x * cos;
        Tensor rotated;
        using (var hi = x.narrow(-1, half, half))
        using (var lo = x.narrow(-1, 0, half))
        using (var neg = hi.neg())
            rotated = cat([neg, lo], -1);
        using (rotated)
        using (var b = rotated * sin)
            return a + b;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _invFreq.Dispose();
        _mropeRow?.Dispose();
    }
}
