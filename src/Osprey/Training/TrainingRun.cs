using System.Text.Json.Nodes;
using Osprey.Distributed;
using Osprey.Models;

namespace Osprey.Training;

/// <summary>
/// What every recipe needs besides its data: the model folder and how to load it, the trainer's options, the run
/// folder, the args.json record, and where log lines and progress go. <see cref="FineTuning"/> builds it from a
/// verb's options; programs that encode their own data can build it themselves.
/// </summary>
public sealed record TrainingRun
{
    /// <summary>The base model folder (config.json + safetensors).</summary>
    public required string ModelDirectory { get; init; }

    /// <summary>Device and dtype for the model.</summary>
    public required ModelLoadOptions Load { get; init; }

    /// <summary>How to train.</summary>
    public required TrainerOptions Options { get; init; }

    /// <summary>Where this run's files go (<c>output/…/v0-20250101-120000</c>); a resumed run continues in its checkpoint's folder.</summary>
    public required string RunDirectory { get; init; }

    /// <summary>The run's settings, written to args.json (and into every checkpoint) with the resolved values added.</summary>
    public JsonObject Args { get; init; } = [];

    /// <summary>Human-readable log lines (model, adapters, checkpoints saved).</summary>
    public TextWriter Log { get; init; } = TextWriter.Null;

    /// <summary>Called after every optimizer step.</summary>
    public Action<TrainingProgress>? Progress { get; init; }

    /// <summary>
    /// The ranks this run trains on (<see cref="ProcessGroup.Join"/>; null: a group of one). Each rank passes the same
    /// data and options; rank 0 writes the logs and checkpoints.
    /// </summary>
    public ProcessGroup? Group { get; init; }

    /// <summary>Benchmark evaluation run at every evaluation step (null: none); see <see cref="EvaluationHook"/>.</summary>
    public EvaluationHook? Evaluation { get; init; }
}
