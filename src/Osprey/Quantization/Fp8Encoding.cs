using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// float32 → float8_e4m3fn bytes, rounding to nearest with ties to even (the cast PyTorch's <c>.to(torch.float8_e4m3fn)</c>
/// makes), with values beyond ±448 saturated to ±448 (scaled weights never exceed it; saturating is what FP8 quantizers do).
/// TorchSharp has no float8 type, so the nearest code is found among the 127 finite non-negative values of
/// <see cref="Fp8Weight.E4M3Table"/> (codes 0 … 126, increasing).
/// </summary>
internal static class Fp8Encoding
{
    /// <summary>The largest finite e4m3fn value.</summary>
    public const double Max = 448.0;

    /// <summary>Bytes (uint8, same shape) of the e4m3fn values nearest to <paramref name="x"/>.</summary>
    public static Tensor Encode(Tensor x)
    {
        using var scope = NewDisposeScope();
        var values = tensor(Fp8Weight.E4M3Table.Take(127).ToArray(), device: x.device);
        var f = x.to_type(ScalarType.Float32);
        var magnitude = f.abs().clamp_max(Max);
        var upper = searchsorted(values, magnitude).clamp(0, 126);   // first value ≥ |x|
        var lower = upper.sub(1).clamp_min(0);
        var up = values.index_select(0, upper.flatten()).view_as(magnitude);
        var low = values.index_select(0, lower.flatten()).view_as(magnitude);
        var dUp = up.sub(magnitude);
        var dLow = magnitude.sub(low);
        // A tie goes to the even code: its last mantissa bit is 0, which is the code's lowest bit.
        var takeUp = dUp.lt(dLow).logical_or(dUp.eq(dLow).logical_and(upper.remainder(2).eq(0)));
        var code = where(takeUp, upper, lower);
        var sign = f.lt(0).logical_and(code.ne(0)).to_type(ScalarType.Int64).mul(128);
        return code.add(sign).to_type(ScalarType.Byte).MoveToOuterDisposeScope();
    }
}
