using Osprey.Runtime;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Osprey.Models.Blocks;

/// <summary>
/// silu(gate) * up through the fused CUDA kernels with autograd. <c>apply(stacked, null)</c> takes the [.., 2n] output of
/// a stacked gate/up projection (gate first) and hands back one stacked gradient, so autograd never scatters two halves
/// into zeros; <c>apply(gate, up)</c> takes two [.., n] tensors. Keeps its inputs for backward, as the tensor path does.
/// </summary>
internal sealed class FusedSwiGluFunction : SingleTensorFunction<FusedSwiGluFunction>
{
    /// <inheritdoc />
    public override string Name => nameof(FusedSwiGluFunction);

    static (Tensor Gate, Tensor Up) Halves(Tensor stacked)
    {
        var n = stacked.shape[^1] / 2;
        return (stacked.narrow(-1, 0, n), stacked.narrow(-1, n, n));
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var first = (Tensor)vars[0];
        var up = vars[1] as Tensor;
        ctx.save_for_backward(up is null ? [first] : [first, up]);
        if (up is not null) return FusedKernels.SwiGlu(first, up);
        var (g, u) = Halves(first);
        using (g)
        using (u)
            return FusedKernels.SwiGlu(g, u);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        HandedBack.Release();
        var saved = ctx.get_saved_variables();
        List<Tensor> result;
        if (saved.Count == 1)
        {
            var stacked = saved[0];
            var grad = empty([.. stacked.shape], dtype: stacked.dtype, device: stacked.device);
            var (g, u) = Halves(stacked);
            var (dg, du) = Halves(grad);
            FusedKernels.SwiGluBackward(grad_output, g, u, dg, du);
            foreach (var t in new[] { g, u, dg, du }) t.Dispose();
            HandedBack.Add(grad);
            result = [grad, null!];
        }
        else
        {
            using var g = saved[0].contiguous();
            using var u = saved[1].contiguous();
            var dg = empty_like(g);
            var du = empty_like(u);
            FusedKernels.SwiGluBackward(grad_output, g, u, dg, du);
            HandedBack.Add(dg, du);
            result = [dg, du];
        }
        foreach (var t in saved) t.Dispose();
        grad_output.Dispose();
        return result;
    }
}
