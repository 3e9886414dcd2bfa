using static TorchSharp.torch;

namespace Osprey.Training.Grpo;

/// <summary>One micro-batch's GRPO loss (0-dim, differentiable), its per-token losses [B, T] and its metrics (0-dim, detached).</summary>
internal sealed record GrpoLossResult(Tensor Loss, Tensor PerTokenLoss, IReadOnlyDictionary<string, Tensor> Metrics);
