using System.Text.Json.Nodes;

namespace Osprey.Training.Grpo;

/// <summary>One GRPO prompt: its token ids (chat template applied, generation header added), messages and dataset row.</summary>
/// <param name="Ids">The prompt's token ids.</param>
/// <param name="Messages">The prompt messages, for reward functions.</param>
/// <param name="Row">The dataset row with every column (e.g. <c>solution</c>).</param>
/// <param name="Where">"FILE line N", for messages.</param>
public sealed record GrpoPrompt(int[] Ids, IReadOnlyList<object?> Messages, JsonObject Row, string Where);
