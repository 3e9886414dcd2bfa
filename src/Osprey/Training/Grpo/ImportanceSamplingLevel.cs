namespace Osprey.Training.Grpo;

/// <summary>Where GRPO's importance ratio π_θ/π_old is taken (<c>--importance_sampling_level</c>).</summary>
public enum ImportanceSamplingLevel
{
    /// <summary>One ratio per token (GRPO, DAPO).</summary>
    Token,

    /// <summary>One ratio per completion: the exponent of its mean token log-ratio (GSPO, Zheng et al. 2025).</summary>
    Sequence,
}
