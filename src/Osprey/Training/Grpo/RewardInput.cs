using System.Text.Json.Nodes;

namespace Osprey.Training.Grpo;

/// <summary>
/// One completion to score, with what it answers: the prompt conversation, the dataset row it came from (every column,
/// e.g. <c>solution</c>), its token count and whether generation stopped at the length limit.
/// </summary>
/// <param name="Completion">The generated text, without the end-of-turn token.</param>
/// <param name="Messages">The prompt messages (role/content objects) it answers.</param>
/// <param name="Row">The dataset row, as read: every column, including ones Osprey does not interpret.</param>
/// <param name="CompletionTokens">Tokens generated (the end-of-turn token included when it was generated).</param>
/// <param name="Truncated">True when generation stopped at <c>--max_completion_length</c>.</param>
public sealed record RewardInput(string Completion, IReadOnlyList<object?> Messages, JsonObject Row, int CompletionTokens, bool Truncated)
{
    /// <summary>A column of the row as text (strings as they are, other values as JSON), or null when absent.</summary>
    public string? Column(string name) => Row[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var node => node.ToJsonString(),
    };
}
