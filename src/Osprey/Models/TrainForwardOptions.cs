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

    /// <summary>Seed for dropout draws, re-applied per layer; null leaves the global generator alone.</summary>
    public long? DropoutSeed { get; init; }
}
