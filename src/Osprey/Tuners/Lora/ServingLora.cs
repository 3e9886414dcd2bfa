using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>One serving adapter on one linear layer: A [r, in], B [out, r] in the model's dtype and device, and its scaling.</summary>
internal sealed class ServingLora(int index, Tensor a, Tensor b, double scaling) : IDisposable
{
    /// <summary>The adapter number (1, 2, ...).</summary>
    public int Index { get; } = index;

    /// <summary>The down projection [r, in].</summary>
    public Tensor A { get; } = a;

    /// <summary>The up projection [out, r].</summary>
    public Tensor B { get; } = b;

    /// <summary>alpha / r, or alpha / √r for rsLoRA.</summary>
    public double Scaling { get; } = scaling;

    /// <inheritdoc />
    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }

    /// <summary>
    /// Adds, in place, Σ_k mask_k ⊙ s_k · (x A_kᵀ) B_kᵀ to <paramref name="y"/> (a layer output [B, T, out] or a
    /// slice of a fused output) for the adapters of <paramref name="adapters"/> that have rows in the batch.
    /// </summary>
    public static void AddDeltas(IReadOnlyList<ServingLora> adapters, ServingRows rows, Tensor x, Tensor y)
    {
        foreach (var lora in adapters)
        {
            if (!rows.TryGet(lora.Index, out var mask)) continue;
            if (x.dim() != 3 || x.shape[0] != rows.Batch)
                throw new OspreyException($"SetRowAdapters named {rows.Batch} rows but the forward pass has input [{string.Join(", ", x.shape)}]; set one adapter number per batch row.");
            using var down = nn.functional.linear(x, lora.A);
            if (mask is not null) down.mul_(mask);
            using var up = nn.functional.linear(down, lora.B);
            y.add_(up, lora.Scaling);
        }
    }
}
