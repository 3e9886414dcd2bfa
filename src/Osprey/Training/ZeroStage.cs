namespace Osprey.Training;

/// <summary>What a rank keeps of the training state (DeepSpeed's ZeRO stages).</summary>
public enum ZeroStage
{
    /// <summary>Plain data parallel: every rank holds all weights, gradients and optimizer state; gradients are all-reduced.</summary>
    None = 0,

    /// <summary>Optimizer state (float32 master and AdamW moments) and gradients sharded: reduce-scatter, local update, all-gather of the weights.</summary>
    Zero2 = 2,

    /// <summary>ZeRO-2 plus the trainable weights themselves sharded between steps and gathered layer by layer.</summary>
    Zero3 = 3,
}
