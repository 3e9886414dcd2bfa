using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// The adapters of a <see cref="FusedProjection"/>'s parts applied to the projection's one stacked output, put there
/// from outside the model (LoRA on q/k/v or gate/up). With one, the base stays one matrix multiply over the stacked
/// weight while its parts carry adapters, instead of one product per part with each part's adapter after it.
/// </summary>
internal interface IStackedAdapter
{
    /// <summary>True when <see cref="Forward"/> gives what the parts' own adapters would (else the parts run one by one).</summary>
    bool Applies(bool training);

    /// <summary>
    /// The stacked output with every part's adapter applied, given the input <paramref name="x"/> and the stacked base
    /// output <paramref name="baseOutput"/> (x W_sᵀ + b_s, [..., Σout]).
    /// </summary>
    Tensor Forward(Tensor x, Tensor baseOutput, bool training);
}
