using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Training.Grpo;

namespace Osprey.Training.Ppo;

/// <summary>
/// What a PPO checkpoint needs besides the policy, the value model and the optimizer to continue (ppo_state.json): the
/// next position in the prompt stream, how many rollout batches were made (it seeds the next one's sampling and
/// shuffles), and the rollout batch in use with the index of its next optimizer step, when a checkpoint falls inside one.
/// </summary>
internal sealed class PpoState
{
    public const string FileName = "ppo_state.json";

    public long Cursor { get; set; }
    public long Generations { get; set; }
    public int NextStep { get; set; }
    public List<PpoSample>? Batch { get; set; }
    public Dictionary<string, double> BatchMetrics { get; set; } = [];

    /// <summary>Writes the state into <paramref name="folder"/> (temp file + rename).</summary>
    public void Save(string folder)
    {
        var o = new JsonObject { ["cursor"] = Cursor, ["generations"] = Generations, ["next_step"] = NextStep };
        if (Batch is not null && NextStep > 0)
        {
            o["batch"] = new JsonArray(Batch.Select(s => (JsonNode)new JsonObject
            {
                ["prompt"] = s.Rollout.Prompt,
                ["prompt_ids"] = JsonSerializer.SerializeToNode(s.Rollout.PromptIds),
                ["completion"] = JsonSerializer.SerializeToNode(s.Rollout.Completion),
                ["text"] = s.Rollout.Text,
                ["truncated"] = s.Rollout.Truncated,
                ["score"] = s.Score,
                ["logps"] = JsonSerializer.SerializeToNode(s.Logps),
                ["values"] = JsonSerializer.SerializeToNode(s.Values),
                ["advantages"] = JsonSerializer.SerializeToNode(s.Advantages),
                ["returns"] = JsonSerializer.SerializeToNode(s.Returns),
            }).ToArray());
            o["batch_metrics"] = JsonSerializer.SerializeToNode(BatchMetrics);
        }
        var path = Path.Combine(folder, FileName);
        File.WriteAllText(path + ".tmp", o.ToJsonString());
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Reads a checkpoint's state; null when it has none (a checkpoint from another method).</summary>
    public static PpoState? Load(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var state = new PpoState
        {
            Cursor = o["cursor"]!.GetValue<long>(),
            Generations = o["generations"]!.GetValue<long>(),
            NextStep = o["next_step"]!.GetValue<int>(),
        };
        if (o["batch"] is JsonArray batch)
        {
            state.Batch = batch.Select(n => new PpoSample
            {
                Rollout = new Rollout
                {
                    Prompt = n!["prompt"]!.GetValue<int>(),
                    PromptIds = n["prompt_ids"]!.Deserialize<int[]>()!,
                    Completion = n["completion"]!.Deserialize<int[]>()!,
                    Text = n["text"]!.GetValue<string>(),
                    Truncated = n["truncated"]!.GetValue<bool>(),
                },
                Score = n["score"]!.GetValue<double>(),
                Logps = n["logps"]!.Deserialize<float[]>()!,
                Values = n["values"]!.Deserialize<float[]>()!,
                Advantages = n["advantages"]!.Deserialize<float[]>()!,
                Returns = n["returns"]!.Deserialize<float[]>()!,
            }).ToList();
            state.BatchMetrics = o["batch_metrics"]!.Deserialize<Dictionary<string, double>>()!;
        }
        return state;
    }
}
