using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Something put on a <see cref="LinearLayer"/> from outside the model (a LoRA or DoRA adapter today, a quantized base
/// next) that turns the layer's base output into the layer's output. The model knows nothing about what it is: the
/// layer computes x Wᵀ + b, hands it over with the input, and registers the adapter's tensors under the names the
/// adapter gives, so they sit in the state dict beside the weight (<c>...q_proj.lora_A.weight</c>) and move with the
/// module.
/// </summary>
internal interface ILinearAdapter
{
    /// <summary>Submodules registered on the layer, by name relative to it (a module <c>lora_A</c> with a weight gives the key <c>lora_A.weight</c>).</summary>
    IEnumerable<(string Name, nn.Module Module)> Modules { get; }

    /// <summary>Parameters registered on the layer itself, by name relative to it (e.g. <c>lora_magnitude_vector</c>).</summary>
    IEnumerable<(string Name, Parameter Parameter)> LayerParameters { get; }

    /// <summary>
    /// False when <see cref="Forward"/> never reads its weight argument (plain LoRA): a layer with a quantized base then
    /// passes its storage-free placeholder instead of dequantizing the weight a second time.
    /// </summary>
    bool ReadsWeight => true;

    /// <summary>
    /// The layer's output for input <paramref name="x"/>, given its base output <paramref name="baseOutput"/>
    /// (x <paramref name="weight"/>ᵀ + <paramref name="bias"/>) and whether the layer is in training mode.
    /// </summary>
    Tensor Forward(Tensor x, Tensor baseOutput, Tensor weight, Tensor? bias, bool training);
}
