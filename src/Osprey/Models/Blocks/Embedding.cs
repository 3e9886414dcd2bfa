using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>Token embedding table [vocab, hidden], allocated uninitialised like <see cref="LinearLayer"/>.</summary>
internal sealed class Embedding : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    Parameter weight;
#pragma warning restore IDE0044

    /// <summary>Creates an uninitialised table.</summary>
    public Embedding(long vocab, long dim, ScalarType dtype, Device device) : base("Embedding")
    {
        weight = new Parameter(empty(vocab, dim, dtype: dtype, device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>The [vocab, hidden] table (also the tied lm_head weight).</summary>
    public Parameter Weight => weight;

    /// <inheritdoc />
    public override Tensor forward(Tensor ids)
    {
        var rows = weight.index_select(0, ids.reshape(-1));
        return rows.view([.. ids.shape, weight.shape[1]]);
    }
}
