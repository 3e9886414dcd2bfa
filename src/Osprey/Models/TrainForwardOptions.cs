namespace Osprey.Models;

/// <summary>How <see cref="CausalLM.ForwardBackward"/> runs one micro-batch.</summary>
public sealed record TrainForwardOptions
{
    /// <summary>Back-propagate (training); false evaluates the loss only.</summary>
    public bool Backward { get; init; } = true;

    /// <summary>The summed loss is multiplied by this before back-propagation (1 / labelled tokens of the whole accumulated step).</summary>
    public double LossScale { get; init; } = 1;

    /// <summary>Recompute each layer in the backward pass instead of keeping its activations.</summary>
    public bool GradientCheckpointing { get; init; }

    /// <summary>Labelled positions whose logits are computed at once (bounds the float32 logits in memory).</summary>
    public long LossChunkRows { get; init; } = 2048;

    /// <summary>
    /// A sequence-level loss instead of the token cross-entropy: called with each row's summed log-probability of its
    /// labelled tokens [B] (differentiable) and their counts [B], it returns the micro-batch loss (0-dim). Its value is
    /// returned as <see cref="TrainForwardResult.LossSum"/>; gradients are scaled by <see cref="LossScale"/>.
    /// </summary>
    public Func<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>? SequenceObjective { get; init; }

    /// <summary>Also return each row's summed label log-probability and label count (e.g. a reference model's, with <see cref="Backward"/> false).</summary>
    public bool RowLogProbs { get; init; }

    /// <summary>Gathers and releases sharded layer weights around each layer (ZeRO-3); null: the weights stay where they are.</summary>
    public ILayerResidency? Residency { get; init; }

    /// <summary>
    /// A token-level loss instead of the token cross-entropy (GRPO): called with the log-probability of every labelled
    /// token [N] (differentiable; row-major order, each row's tokens in sequence order), it returns the micro-batch loss
    /// (0-dim). Its value is returned as <see cref="TrainForwardResult.LossSum"/>; gradients are scaled by <see cref="LossScale"/>.
    /// </summary>
    public Func<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>? TokenObjective { get; init; }

    /// <summary>Also return every labelled token's log-probability and the entropy of its predicted distribution [N] (detached).</summary>
    public bool TokenLogProbs { get; init; }

    /// <summary>Seed for dropout draws, re-applied per layer; null leaves the global generator alone.</summary>
    public long? DropoutSeed { get; init; }

    /// <summary>
    /// A vision-language model's images for this micro-batch, in placeholder order (row by row): their tower features
    /// replace the image placeholder tokens and positions are M-RoPE's, as in inference. Null or empty: text only.
    /// </summary>
    public IReadOnlyList<Osprey.Images.ProcessedImage>? Images { get; init; }

    /// <summary>
    /// The labelled positions, when the caller already knows them: int64 [N] on the model's device, the indices into the
    /// flattened [B, T − 1] shifted labels whose label is not -100, ascending (what <c>nonzero</c> of that mask gives).
    /// Null: found on the device, which waits for the device to finish what was queued before it.
    /// </summary>
    public TorchSharp.torch.Tensor? LabelledPositions { get; init; }

    /// <summary>
    /// With pinned uploads (<c>OSPREY_PINNED_BATCHES=1</c>) on a CUDA <paramref name="device"/>, the
    /// <see cref="LabelledPositions"/> of host labels found on the host and uploaded without a wait, so the forward pass
    /// does not wait for the device to find them; otherwise null (found on the device).
    /// </summary>
    public static TorchSharp.torch.Tensor? PinnedLabelledPositions(long[] labels, int rows, int columns, TorchSharp.torch.Device device)
    {
        if (!Runtime.HostUpload.Pinned || device.type != TorchSharp.DeviceType.CUDA) return null;
        var positions = LabelledPositionsOf(labels, rows, columns);
        return Runtime.HostUpload.Int64(positions, [positions.LongLength], device, pinned: true);
    }

    /// <summary>The <see cref="LabelledPositions"/> of host labels [<paramref name="rows"/>, <paramref name="columns"/>] (row-major).</summary>
    public static long[] LabelledPositionsOf(long[] labels, int rows, int columns)
    {
        var picks = new List<long>(labels.Length);
        for (var r = 0; r < rows; r++)
            for (var p = 0; p < columns - 1; p++)
                if (labels[r * columns + p + 1] != -100) picks.Add((long)r * (columns - 1) + p);
        return [.. picks];
    }
}
