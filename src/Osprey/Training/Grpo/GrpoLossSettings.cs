namespace Osprey.Training.Grpo;

/// <summary>
/// The hyperparameters of one GRPO loss evaluation: the normalisation (<c>--loss_type</c>), where the ratio is taken,
/// the clip range, the KL weight, and the two normalisers that depend on the run rather than the micro-batch.
/// </summary>
/// <param name="LossType">grpo, bnpo, dr_grpo or dapo.</param>
/// <param name="Level">Token or sequence (GSPO) importance ratios.</param>
/// <param name="Epsilon">The lower clip ε (ratio ≥ 1 − ε).</param>
/// <param name="EpsilonHigh">The upper clip (ratio ≤ 1 + ε_high).</param>
/// <param name="Beta">The weight of the k3 KL estimate; 0 drops the term.</param>
/// <param name="MaxCompletionLength">Dr. GRPO's constant denominator per completion.</param>
/// <param name="GenerationTokens">DAPO's denominator: completion tokens in the whole generation batch.</param>
internal sealed record GrpoLossSettings(string LossType, ImportanceSamplingLevel Level, double Epsilon, double EpsilonHigh, double Beta,
    int MaxCompletionLength, double GenerationTokens);
