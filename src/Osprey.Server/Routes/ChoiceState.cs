using System.Text;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>What one choice of a response has produced so far.</summary>
internal sealed class ChoiceState(int index, int promptTokens)
{
    public int Index { get; } = index;
    public int Group { get; init; }
    public StringBuilder Text { get; } = new();
    public List<GeneratedToken> Tokens { get; } = [];
    public string? Finish { get; set; }
    public int PromptTokens { get; set; } = promptTokens;
    public int CompletionTokens { get; set; }
    public ToolCallStream? Tools { get; set; }

    /// <summary>Takes in one engine update of this choice.</summary>
    public void Add(EngineUpdate u)
    {
        Text.Append(u.TextDelta);
        if (u.Token is not null) Tokens.Add(u.Token);
        PromptTokens = u.PromptTokens;
        CompletionTokens = u.CompletionTokens;
        if (u.Finish is not null) Finish = u.Finish;
    }
}
