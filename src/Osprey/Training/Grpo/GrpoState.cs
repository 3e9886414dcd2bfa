using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Training.Grpo;

/// <summary>
/// What a GRPO checkpoint needs besides weights and optimizer to continue bit-identically (grpo_state.json): the next
/// position in the prompt stream, how many generation batches were made (it seeds the next one's sampling), and the
/// generation batch in use with the index of its next micro-batch, when a checkpoint falls inside one.
/// </summary>
internal sealed class GrpoState
{
    public const string FileName = "grpo_state.json";

    public long Cursor { get; set; }
    public long Generations { get; set; }
    public int NextMicro { get; set; }
    public List<Rollout>? Batch { get; set; }
    public Dictionary<string, double> BatchMetrics { get; set; } = [];

    /// <summary>Writes the state into <paramref name="folder"/> (temp file + rename).</summary>
    public void Save(string folder)
    {
        var o = new JsonObject { ["cursor"] = Cursor, ["generations"] = Generations, ["next_micro"] = NextMicro };
        if (Batch is not null && NextMicro > 0)
        {
            o["batch"] = new JsonArray(Batch.Select(r => (JsonNode)new JsonObject
            {
                ["prompt"] = r.Prompt,
                ["prompt_ids"] = JsonSerializer.SerializeToNode(r.PromptIds),
                ["completion"] = JsonSerializer.SerializeToNode(r.Completion),
                ["text"] = r.Text,
                ["truncated"] = r.Truncated,
                ["rewards"] = JsonSerializer.SerializeToNode(r.Rewards.Select(v => double.IsNaN(v) ? (double?)null : v)),
                ["reward"] = r.Reward,
                ["advantage"] = r.Advantage,
                ["old_logps"] = r.OldLogps is null ? null : JsonSerializer.SerializeToNode(r.OldLogps),
                ["ref_logps"] = r.RefLogps is null ? null : JsonSerializer.SerializeToNode(r.RefLogps),
            }).ToArray());
            o["batch_metrics"] = JsonSerializer.SerializeToNode(BatchMetrics);
        }
        var path = Path.Combine(folder, FileName);
        File.WriteAllText(path + ".tmp", o.ToJsonString());
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Reads a checkpoint's state; null when it has none (a checkpoint from another method).</summary>
    public static GrpoState? Load(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var state = new GrpoState
        {
            Cursor = o["cursor"]!.GetValue<long>(),
            Generations = o["generations"]!.GetValue<long>(),
            NextMicro = o["next_micro"]!.GetValue<int>(),
        };
        if (o["batch"] is JsonArray batch)
        {
            state.Batch = batch.Select(n => new Rollout
            {
                Prompt = n!["prompt"]!.GetValue<int>(),
                PromptIds = n["prompt_ids"]!.Deserialize<int[]>()!,
                Completion = n["completion"]!.Deserialize<int[]>()!,
                Text = n["text"]!.GetValue<string>(),
                Truncated = n["truncated"]!.GetValue<bool>(),
                Rewards = n["rewards"]!.Deserialize<double?[]>()!.Select(v => v ?? double.NaN).ToArray(),
                Reward = n["reward"]!.GetValue<double>(),
                Advantage = n["advantage"]!.GetValue<double>(),
                OldLogps = n["old_logps"]?.Deserialize<float[]>(),
                RefLogps = n["ref_logps"]?.Deserialize<float[]>(),
            }).ToList();
            state.BatchMetrics = o["batch_metrics"]!.Deserialize<Dictionary<string, double>>()!;
        }
        return state;
    }
}
