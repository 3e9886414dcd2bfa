using static TorchSharp.torch;

namespace Osprey.Training.Ppo;

/// <summary>
/// PPO's math on padded completion grids [B, T] with a 0/1 mask (Schulman et al. 2017; GAE: Schulman et al. 2016; the
/// RLHF arrangement of Ziegler et al. 2019 / TRL): per-token rewards, masked whitening, GAE and the clipped policy and
/// value losses. Inputs are float32; every function is differentiable where it should be.
/// </summary>
public static class PpoMath
{
    /// <summary>sum(x·m) / sum(m).</summary>
    public static Tensor MaskedMean(Tensor x, Tensor mask) => (x * mask).sum() / mask.sum();

    /// <summary>The masked variance with Bessel's correction (n / (n - 1)).</summary>
    public static Tensor MaskedVar(Tensor x, Tensor mask)
    {
        var centred = x - MaskedMean(x, mask);
        var n = mask.sum();
        return MaskedMean(centred * centred, mask) * n / (n - 1);
    }

    /// <summary>(x - mean) / sqrt(var + 1e-8) over the masked entries; without <paramref name="shiftMean"/> the mean is added back.</summary>
    public static Tensor Whiten(Tensor x, Tensor mask, bool shiftMean = true)
    {
        var mean = MaskedMean(x, mask);
        var whitened = (x - mean) * (MaskedVar(x, mask) + 1e-8).rsqrt();
        return shiftMean ? whitened : whitened + mean;
    }

    /// <summary>
    /// Per-token rewards: −kl_coef·(logp − ref_logp) on every completion token, plus each row's
    /// <paramref name="scores"/> [B] at its last token (the mask's last 1); 0 in the padding.
    /// </summary>
    public static Tensor Rewards(Tensor logps, Tensor refLogps, Tensor scores, Tensor mask, double klCoef)
    {
        var t = mask.shape[1];
        var last = (arange(t, dtype: ScalarType.Float32, device: mask.device).unsqueeze(0) * mask).argmax(1);
        var atLast = nn.functional.one_hot(last, t).to_type(ScalarType.Float32) * scores.unsqueeze(1);
        return (-klCoef * (logps - refLogps) + atLast) * mask;
    }

    /// <summary>
    /// Generalised advantage estimation backwards over T: δ_t = r_t + γ·V_{t+1} − V_t (V_T = 0),
    /// A_t = δ_t + γλ·A_{t+1}; returns R = A + V. Values and rewards must be 0 in the padding, which makes a row's last
    /// token terminal.
    /// </summary>
    public static (Tensor Advantages, Tensor Returns) Gae(Tensor rewards, Tensor values, double gamma, double lam)
    {
        var t = (int)rewards.shape[1];
        var columns = new Tensor[t];
        Tensor last = zeros_like(rewards.select(1, 0));
        for (var k = t - 1; k >= 0; k--)
        {
            var next = k < t - 1 ? values.select(1, k + 1) : zeros_like(last);
            var delta = rewards.select(1, k) + gamma * next - values.select(1, k);
            last = delta + gamma * lam * last;
            columns[k] = last;
        }
        var advantages = stack(columns, 1);
        return (advantages, advantages + values);
    }

    /// <summary>
    /// The clipped surrogate: ratio = exp(logp − old), loss = masked mean of max(−A·ratio, −A·clip(ratio, 1 ± ε));
    /// clipfrac = share of tokens where the clipped term wins; approx_kl = ½·masked mean of (logp − old)².
    /// </summary>
    public static (Tensor Loss, Tensor ClipFrac, Tensor ApproxKl, Tensor Ratio) PolicyLoss(Tensor logps, Tensor oldLogps, Tensor advantages, Tensor mask, double clipRange)
    {
        var diff = logps - oldLogps;
        var ratio = diff.exp();
        var unclipped = -advantages * ratio;
        var clipped = -advantages * ratio.clamp(1 - clipRange, 1 + clipRange);
        var loss = MaskedMean(maximum(unclipped, clipped), mask);
        var clipFrac = MaskedMean(clipped.gt(unclipped).to_type(ScalarType.Float32), mask);
        var approxKl = 0.5 * MaskedMean(diff * diff, mask);
        return (loss, clipFrac.detach(), approxKl.detach(), MaskedMean(ratio, mask).detach());
    }

    /// <summary>
    /// The clipped value loss: V_clip = V_old + clip(V − V_old, ±ε_v), loss = ½·masked mean of
    /// max((V − R)², (V_clip − R)²); clipfrac = share of tokens where the clipped term wins.
    /// </summary>
    public static (Tensor Loss, Tensor ClipFrac) ValueLoss(Tensor values, Tensor oldValues, Tensor returns, Tensor mask, double clipRangeValue)
    {
        var clippedValues = oldValues + (values - oldValues).clamp(-clipRangeValue, clipRangeValue);
        var unclipped = (values - returns).square();
        var clipped = (clippedValues - returns).square();
        var loss = 0.5 * MaskedMean(maximum(unclipped, clipped), mask);
        return (loss, MaskedMean(clipped.gt(unclipped).to_type(ScalarType.Float32), mask).detach());
    }
}
