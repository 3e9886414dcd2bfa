using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>The encoder's "layers", run in order; every layer's output is kept up to the last one a feature layer needs.</summary>
internal sealed class Encoder : nn.Module
{
#pragma warning disable IDE0044
    ModuleList<EncoderLayer> layers;
#pragma warning restore IDE0044

    public Encoder(EncoderSpec s, ScalarType dtype, Device device) : base("Encoder")
    {
        layers = new ModuleList<EncoderLayer>();
        for (var i = 0; i < s.Layers; i++) layers.Add(new EncoderLayer(s, dtype, device));
        RegisterComponents();
    }

    /// <summary>transformers' hidden_states: [input, after layer 1, …, after layer <paramref name="upTo"/>].</summary>
    public List<Tensor> HiddenStates(Tensor x, int upTo)
    {
        var states = new List<Tensor> { x };
        for (var i = 0; i < upTo; i++) states.Add(layers[i].forward(states[^1]));
        return states;
    }
}
