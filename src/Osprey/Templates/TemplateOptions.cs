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

/// <summary>
/// What to do with an encoded sample longer than <c>--max_length</c>, as ms-swift's <c>--truncation_strategy</c>
/// (swift/llm/argument/base_args/template_args.py, swift/template/base.py <c>_encode_truncated</c>).
/// </summary>
public enum TruncationStrategy
{
    /// <summary>Drop the sample (ms-swift's default).</summary>
    Delete,

    /// <summary>Keep the last max_length tokens (cut from the left).</summary>
    Left,

    /// <summary>Keep the first max_length tokens (cut from the right).</summary>
    Right,
}

/// <summary>Parsing of the ms-swift flag values.</summary>
public static class TemplateFlags
{
    /// <summary>Parses <c>default</c>, <c>last_round</c> or <c>all</c>.</summary>
    public static LossScale ParseLossScale(string value) => value?.Trim().ToLowerInvariant() switch
    {
        "default" => LossScale.Default,
        "last_round" or "last-round" => LossScale.LastRound,
        "all" => LossScale.All,
        _ => throw new OspreyException($"Unknown loss_scale '{value}'; use default, last_round or all."),
    };

    /// <summary>Parses <c>delete</c>, <c>left</c> or <c>right</c>.</summary>
    public static TruncationStrategy ParseTruncationStrategy(string value) => value?.Trim().ToLowerInvariant() switch
    {
        "delete" => TruncationStrategy.Delete,
        "left" => TruncationStrategy.Left,
        "right" => TruncationStrategy.Right,
        _ => throw new OspreyException($"Unknown truncation_strategy '{value}'; use delete, left or right."),
    };

    /// <summary>The flag spelling of a loss scale.</summary>
    public static string Name(this LossScale value) => value switch
    {
        LossScale.LastRound => "last_round",
        LossScale.All => "all",
        _ => "default",
    };
}

/// <summary>Options shared by training encoding and inference prompt rendering.</summary>
public sealed class TemplateOptions
{
    /// <summary>
    /// <c>--system</c>: the system prompt for conversations that have none, replacing the template's default system
    /// (ms-swift's priority: the sample's own system message, then <c>--system</c>, then the template's default).
    /// An empty string means no system prompt at all.
    /// </summary>
    public string? System { get; init; }

    /// <summary><c>--loss_scale</c>.</summary>
    public LossScale LossScale { get; init; } = LossScale.Default;

    /// <summary>Extra variables for Jinja chat templates, e.g. <c>enable_thinking</c>.</summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }

    internal static readonly TemplateOptions Defaults = new();
}
