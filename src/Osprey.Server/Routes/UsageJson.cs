using System.Text.Json.Serialization;

namespace Osprey.Server;

/// <summary>A response's <c>usage</c>.</summary>
internal sealed record UsageJson(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens)
{
    /// <summary>Each prompt's tokens once (however many choices it has), the completion tokens of every choice.</summary>
    public static UsageJson Of(IReadOnlyList<ChoiceState> choices)
    {
        var prompt = choices.GroupBy(c => c.Group).Sum(g => g.First().PromptTokens);
        var completion = choices.Sum(c => c.CompletionTokens);
        return new UsageJson(prompt, completion, prompt + completion);
    }
}
