using static TorchSharp.torch;

namespace Osprey.Training.Preference;

/// <summary>
/// A preference loss and what to log with it.
/// </summary>
/// <param name="Loss">The 0-dim float32 loss, averaged over the batch; differentiable.</param>
/// <param name="Metrics">
/// 0-dim float32 batch means, detached, under TRL's names: <c>rewards/chosen</c>, <c>rewards/rejected</c>,
/// <c>rewards/accuracies</c>, <c>rewards/margins</c>, <c>logps/chosen</c>, <c>logps/rejected</c> where the objective
/// defines them, plus <c>nll_loss</c> (when an NLL was given), ORPO's <c>log_odds_ratio</c> and <c>log_odds_chosen</c>,
/// and KTO's <c>kl</c>.
/// </param>
public sealed record PreferenceLossResult(Tensor Loss, IReadOnlyDictionary<string, Tensor> Metrics);
