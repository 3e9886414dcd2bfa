using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// What one micro-batch gave: the summed cross-entropy and the number of correctly predicted tokens as
/// one-element device tensors (read them once per logging step, not per micro-batch, to avoid host syncs), and
/// the number of labelled tokens.
/// </summary>
public sealed record TrainForwardResult(Tensor LossSum, Tensor Correct, long Tokens) : IDisposable
{
    /// <summary>Each row's summed log-probability of its labelled tokens [B] (sequence objectives and <see cref="TrainForwardOptions.RowLogProbs"/>), detached.</summary>
    public Tensor? RowLogProbs { get; init; }

    /// <summary>Each row's number of labelled tokens [B], as float32.</summary>
    public Tensor? RowCounts { get; init; }

    /// <summary>Every labelled token's log-probability [N] (<see cref="TrainForwardOptions.TokenObjective"/> and <see cref="TrainForwardOptions.TokenLogProbs"/>), detached.</summary>
    public Tensor? TokenLogProbs { get; init; }

    /// <summary>The entropy of the distribution that predicted each labelled token [N], detached.</summary>
    public Tensor? TokenEntropy { get; init; }

    /// <inheritdoc />
    public void Dispose()
    {
        LossSum.Dispose();
        Correct.Dispose();
        RowLogProbs?.Dispose();
        RowCounts?.Dispose();
        TokenLogProbs?.Dispose();
        TokenEntropy?.Dispose();
    }
}
