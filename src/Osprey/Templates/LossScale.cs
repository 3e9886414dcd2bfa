namespace Osprey.Templates;

/// <summary>
/// Which tokens carry loss, as ms-swift's <c>--loss_scale</c> (swift/plugin/loss_scale/loss_scale.py):
/// <c>default</c> every assistant message (its content and the end-of-turn token that closes it),
/// <c>last_round</c> only the final assistant message, <c>all</c> every token. A message's own
/// <c>"loss"</c> key overrides the mode for that assistant message.
/// </summary>
public enum LossScale
{
    /// <summary>Every assistant message carries loss.</summary>
    Default,

    /// <summary>Only the final assistant message carries loss.</summary>
    LastRound,

    /// <summary>Every token carries loss (system, user and tool text too).</summary>
    All,
}
