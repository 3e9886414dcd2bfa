using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Grpo;

/// <summary>
/// The clipped surrogate of GRPO (Shao et al. 2024) and its variants, on padded completions [B, T] with a 0/1 mask:
/// ratio r = exp(log π_θ − log π_old) per token, or per completion from its mean token log-ratio (GSPO, Zheng et al.
/// 2025); per-token loss −min(r·A, clip(r, 1−ε, 1+ε_high)·A) + β·k3 with k3 = exp(ref − logp) − (ref − logp) − 1
/// (Schulman's unbiased KL estimator); then averaged as <c>--loss_type</c> says: grpo (each completion's token mean,
/// then the mean over completions), bnpo (token mean of the micro-batch), dr_grpo (token sum over B × max completion
/// length, Liu et al. 2025), dapo (token sum over the generation batch's tokens, Yu et al. 2025).
/// </summary>
internal static class GrpoLoss
{
    /// <summary>
    /// The loss of one micro-batch. <paramref name="oldLogps"/> null means the rollout policy is the current one
    /// (ratio 1 with the gradient of the current log-probs, as TRL does when each batch is used once);
    /// <paramref name="refLogps"/> is needed when β ≠ 0.
    /// </summary>
    public static GrpoLossResult Compute(Tensor logps, Tensor? oldLogps, Tensor? refLogps, Tensor advantages, Tensor mask, GrpoLossSettings s)
    {
        var old = oldLogps ?? logps.detach();
        var logRatio = logps - old;
        var rowTokens = mask.sum(-1).clamp_min(1.0);
        var logWeights = s.Level == ImportanceSamplingLevel.Sequence
            ? ((logRatio * mask).sum(-1) / rowTokens).unsqueeze(-1).expand_as(logps)
            : logRatio;
        var coef1 = logWeights.exp();
        var coef2 = coef1.clamp(1 - s.Epsilon, 1 + s.EpsilonHigh);
        var a = advantages.unsqueeze(-1);
        var perToken = -minimum(coef1 * a, coef2 * a);
        Tensor? kl = null;
        if (s.Beta != 0)
        {
            if (refLogps is null) throw new ArgumentException("beta is not 0, so reference log-probs are needed", nameof(refLogps));
            var d = refLogps - logps;
            kl = d.exp() - d - 1;
            perToken = perToken + kl * s.Beta;
        }
        var masked = perToken * mask;
        var loss = s.LossType switch
        {
            "grpo" => (masked.sum(-1) / rowTokens).mean(),
            "bnpo" => masked.sum() / mask.sum().clamp_min(1.0),
            "dr_grpo" => masked.sum() / (logps.shape[0] * (double)s.MaxCompletionLength),
            "dapo" => masked.sum() / Math.Max(1.0, s.GenerationTokens),
            _ => throw new ArgumentException($"unknown GRPO loss type {s.LossType}", nameof(s)),
        };

        var metrics = new Dictionary<string, Tensor>();
        using (no_grad())
        {
            var tokens = mask.sum().clamp_min(1.0);
            Tensor MaskedMean(Tensor x) => (x.to_type(ScalarType.Float32) * mask).sum() / tokens;
            var low = coef1.lt(1 - s.Epsilon).logical_and(a.lt(0).expand_as(coef1));
            var high = coef1.gt(1 + s.EpsilonHigh).logical_and(a.gt(0).expand_as(coef1));
            metrics["clip_ratio/low_mean"] = MaskedMean(low);
            metrics["clip_ratio/high_mean"] = MaskedMean(high);
            metrics["clip_ratio/region_mean"] = MaskedMean(low.logical_or(high));
            if (kl is not null) metrics["kl"] = MaskedMean(kl.detach());
        }
        return new GrpoLossResult(loss, perToken, metrics);
    }
}
