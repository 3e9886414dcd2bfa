namespace Osprey.Training.Grpo;

/// <summary>
/// One sampled completion of a generation batch: its prompt, its tokens, rewards and advantage, and the log-probs of its
/// tokens under the rollout policy (when a batch is reused) and the reference (when β ≠ 0).
/// </summary>
internal sealed class Rollout
{
    public required int Prompt { get; init; }
    public required int[] PromptIds { get; init; }
    public required int[] Completion { get; init; }
    public required string Text { get; init; }
    public required bool Truncated { get; init; }
    public double[] Rewards { get; set; } = [];
    public double Reward { get; set; }
    public double Advantage { get; set; }
    public float[]? OldLogps { get; set; }
    public float[]? RefLogps { get; set; }
}
