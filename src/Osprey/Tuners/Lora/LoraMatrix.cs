using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>A bare weight module, so the adapter's state-dict keys read <c>lora_A.weight</c> / <c>lora_B.weight</c> as in PEFT.</summary>
internal sealed class LoraMatrix : nn.Module
{
#pragma warning disable IDE0044
    Parameter weight;
#pragma warning restore IDE0044

    /// <summary>Wraps <paramref name="value"/> as a trainable parameter.</summary>
    public LoraMatrix(Tensor value) : base("LoraMatrix")
    {
        weight = new Parameter(value, requires_grad: true);
        RegisterComponents();
    }

    /// <summary>The matrix.</summary>
    public Parameter Weight => weight;
}
