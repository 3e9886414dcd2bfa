using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Training;

/// <summary>trainer_state.json of a checkpoint: the step reached, the epoch, and the best/last checkpoint record.</summary>
public sealed class TrainerState
{
    /// <summary>The file name.</summary>
    public const string FileName = "trainer_state.json";

    /// <summary>Optimizer steps done.</summary>
    public long GlobalStep { get; set; }

    /// <summary>Epochs done (fractional).</summary>
    public double Epoch { get; set; }

    /// <summary>The lowest evaluation loss so far.</summary>
    public double? BestMetric { get; set; }

    /// <summary>The checkpoint with the lowest evaluation loss.</summary>
    public string? BestCheckpoint { get; set; }

    /// <summary>The most recent checkpoint.</summary>
    public string? LastCheckpoint { get; set; }

    /// <summary>The last evaluation loss.</summary>
    public double? LastEvalLoss { get; set; }

    /// <summary>Writes trainer_state.json into <paramref name="directory"/>.</summary>
    public void Write(string directory)
    {
        var json = new JsonObject
        {
            ["global_step"] = GlobalStep,
            ["epoch"] = Epoch,
            ["best_metric"] = BestMetric,
            ["best_model_checkpoint"] = BestCheckpoint,
            ["last_model_checkpoint"] = LastCheckpoint,
            ["last_eval_loss"] = LastEvalLoss,
        };
        var path = Path.Combine(directory, FileName);
        File.WriteAllText(path + ".tmp", json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Reads a checkpoint's trainer_state.json.</summary>
    public static TrainerState Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new OspreyException($"{directory} has no {FileName}; pass a checkpoint-N folder written by osprey sft.");
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            return new TrainerState
            {
                GlobalStep = json["global_step"]!.GetValue<long>(),
                Epoch = json["epoch"]?.GetValue<double>() ?? 0,
                BestMetric = json["best_metric"]?.GetValue<double>(),
                BestCheckpoint = json["best_model_checkpoint"]?.GetValue<string>(),
                LastCheckpoint = json["last_model_checkpoint"]?.GetValue<string>(),
                LastEvalLoss = json["last_eval_loss"]?.GetValue<double>(),
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException)
        {
            throw new OspreyException($"{path} is not a valid trainer state ({e.Message}).", e);
        }
    }
}
