namespace Osprey.Templates;

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
