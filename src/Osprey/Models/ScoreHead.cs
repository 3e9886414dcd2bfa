using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// transformers' sequence-classification head: <c>score</c> = Linear(hidden, num_labels, bias=False), state-dict key
/// <c>score.weight</c> [num_labels, hidden]. A plain module rather than a <see cref="Blocks.LinearLayer"/>, so LoRA
/// never targets it (PEFT trains it in full through modules_to_save).
/// </summary>
internal sealed class ScoreHead : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044 // TorchSharp registers fields by reflection; keep them plain fields.
    Parameter weight;
#pragma warning restore IDE0044

    /// <summary>An uninitialised [numLabels, hidden] weight in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public ScoreHead(long hidden, long numLabels, ScalarType dtype, Device device, bool trainable) : base("Score")
    {
        weight = new Parameter(empty(numLabels, hidden, dtype: dtype, device: device), requires_grad: trainable);
        RegisterComponents();
    }

    /// <summary>The [numLabels, hidden] weight.</summary>
    public Parameter Weight => weight;

    /// <summary>Number of labels (rows of the weight).</summary>
    public long NumLabels => weight.shape[0];

    /// <inheritdoc />
    public override Tensor forward(Tensor input) => nn.functional.linear(input, weight);
}
