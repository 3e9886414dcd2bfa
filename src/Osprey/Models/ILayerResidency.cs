namespace Osprey.Models;

/// <summary>
/// Where a decoder layer's weights live between uses, for training that shards them over ranks (ZeRO-3):
/// <see cref="CausalLM.ForwardBackward"/> calls <see cref="BeforeLayer"/> before a layer runs (its forward, and its
/// recompute in the backward pass), <see cref="AfterLayerForward"/> when autograd does not hold its weights (evaluation,
/// or the no-autograd forward of gradient checkpointing), and <see cref="AfterLayerBackward"/> once its gradients exist.
/// </summary>
public interface ILayerResidency
{
    /// <summary>Layer <paramref name="layer"/> is about to run: its weights must be present.</summary>
    void BeforeLayer(int layer);

    /// <summary>Layer <paramref name="layer"/> ran and nothing keeps its weights: they may go.</summary>
    void AfterLayerForward(int layer);

    /// <summary>Layer <paramref name="layer"/>'s backward is done: its gradients may be handed off and its weights go.</summary>
    void AfterLayerBackward(int layer);
}
