using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// An addition to a <see cref="LinearLayer"/>'s output computed from the layer's input alone (unmerged serving
/// adapters). Unlike an <see cref="ILinearAdapter"/> it leaves the base computation as it is, so projections stacked
/// into one matrix multiply (<see cref="FusedProjection"/>, gate_up_proj) stay stacked and the delta is added to the
/// layer's slice of the stacked output. It holds no state-dict tensors.
/// </summary>
internal interface ILinearDelta
{
    /// <summary>True when the delta adds anything in the next forward pass; when false the layer runs exactly its base kernels.</summary>
    bool Active { get; }

    /// <summary>Adds the delta for input <paramref name="x"/> to <paramref name="y"/> in place (the layer's output or its slice of a stacked output).</summary>
    void AddTo(Tensor x, Tensor y);
}
