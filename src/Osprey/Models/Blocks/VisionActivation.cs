using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>The activations vision towers and projectors name in hidden_act / projector_hidden_act, as transformers'
/// ACT2FN defines them (quick_gelu is x·σ(1.702x); gelu is the exact erf form).</summary>
internal static class VisionActivation
{
    /// <summary>Applies <paramref name="act"/> to <paramref name="x"/>.</summary>
    public static Tensor Apply(Tensor x, string act) => act switch
    {
        "quick_gelu" => x * (x * 1.702).sigmoid(),
        "silu" => nn.functional.silu(x),
        "gelu" => nn.functional.gelu(x),
        "gelu_pytorch_tanh" or "gelu_new" => nn.functional.gelu(x, GELU.Approximate.tanh),
        _ => throw new OspreyException($"hidden_act '{act}' of the vision tower or projector is not supported (quick_gelu, silu, gelu, gelu_pytorch_tanh, gelu_new)."),
    };

    /// <summary>Throws the same error as <see cref="Apply"/> for an unsupported name, before any weights load.</summary>
    public static void Check(string act, string file)
    {
        if (act is not ("quick_gelu" or "silu" or "gelu" or "gelu_pytorch_tanh" or "gelu_new"))
            throw new OspreyException($"{file}: activation '{act}' is not supported for the vision tower or projector (quick_gelu, silu, gelu, gelu_pytorch_tanh, gelu_new).");
    }
}
