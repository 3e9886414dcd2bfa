using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// Which part of a checkpoint tensor one tensor-parallel rank holds: the <see cref="Ranges"/> (start, length) along
/// <see cref="Dim"/>, joined in order (a fused qkv_proj or gate_up_proj takes its rank's slice of each part). With
/// <see cref="RootOnly"/> the tensor is whole on rank 0 and zero elsewhere: a row-parallel layer's bias, added once to
/// the sum of the ranks' partial outputs.
/// </summary>
public sealed record ShardSlice(int Dim, IReadOnlyList<(long Start, long Length)> Ranges, bool RootOnly = false)
{
    /// <summary>The shape this rank's part of a tensor of <paramref name="shape"/> has.</summary>
    public long[] ShapeOf(IReadOnlyList<long> shape)
    {
        var result = shape.ToArray();
        if (!RootOnly) result[Dim] = Ranges.Sum(r => r.Length);
        return result;
    }

    /// <summary>This rank's part of <paramref name="full"/> (a new tensor; zeros for <see cref="RootOnly"/> off rank 0).</summary>
    public Tensor Take(Tensor full, int rank)
    {
        if (RootOnly) return rank == 0 ? full.alias() : zeros_like(full);
        if (Ranges.Count == 1) return full.narrow(Dim, Ranges[0].Start, Ranges[0].Length).contiguous();
        var parts = Ranges.Select(r => full.narrow(Dim, r.Start, r.Length)).ToArray();
        try
        {
            return cat(parts, Dim);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }
}
