using System.Text.Json.Nodes;
using Osprey.Datasets;
using Osprey.Models;

namespace Osprey.Training;

/// <summary>Everything one fine-tuning run needs: the model, the encoded data, the settings and where to report.</summary>
public sealed record SftRun
{
    /// <summary>The base model folder.</summary>
    public required string ModelDirectory { get; init; }

    /// <summary>Device and dtype choices for loading it.</summary>
    public required ModelLoadOptions Load { get; init; }

    /// <summary>The training settings.</summary>
    public required SftOptions Options { get; init; }

    /// <summary>Encoded training samples (packed rows carry position ids).</summary>
    public required EncodedDataset Train { get; init; }

    /// <summary>Encoded validation samples (may be empty).</summary>
    public EncodedDataset Validation { get; init; } = EncodedDataset.Empty;

    /// <summary>The run folder (<c>output_dir/v0-20261124-101010</c>); when resuming, the checkpoint's parent is used instead.</summary>
    public required string RunDirectory { get; init; }

    /// <summary>The token id used to pad micro-batches.</summary>
    public int PadTokenId { get; init; }

    /// <summary>The arguments to record in args.json (the run's flags as given, plus what was resolved).</summary>
    public JsonObject Args { get; init; } = [];

    /// <summary>Messages for the user (setup, evaluation results, checkpoints).</summary>
    public TextWriter Log { get; init; } = TextWriter.Null;

    /// <summary>Preference training instead of supervised fine-tuning (<c>osprey rlhf</c>); then <see cref="Train"/> is unused.</summary>
    public PreferenceRun? Preference { get; init; }

    /// <summary>Called after every optimizer step (and evaluation) with the numbers a progress bar shows.</summary>
    public Action<TrainingProgress>? Progress { get; init; }
}
