using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// What one micro-batch gave: the summed cross-entropy and the number of correctly predicted tokens as
/// one-element device tensors (read them once per logging step, not per micro-batch, to avoid host syncs), and
/// the number of labelled tokens.
/// </summary>
public sealed record TrainForwardResult(Tensor LossSum, Tensor Correct, long Tokens) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        LossSum.Dispose();
        Correct.Dispose();
    }
}
