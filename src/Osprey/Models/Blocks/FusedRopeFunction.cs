using Osprey.Runtime;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Osprey.Models.Blocks;

/// <summary>
/// RoPE through the fused CUDA kernel with autograd: x [B, T, heads, D] (any strides with unit stride over D, e.g. the
/// query and key heads of a stacked q/k/v output) → a new contiguous [B, T, heads, D]; backward applies the transposed
/// rotation. Nothing but the tables is kept for backward. Called as <c>FusedRopeFunction.apply(x, cos, sin)</c>.
/// </summary>
internal sealed class FusedRopeFunction : SingleTensorFunction<FusedRopeFunction>
{
    /// <inheritdoc />
    public override string Name => nameof(FusedRopeFunction);

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var (cos, sin) = ((Tensor)vars[1], (Tensor)vars[2]);
        var output = empty([.. x.shape], dtype: x.dtype, device: x.device);
        FusedKernels.Rope(x, output, cos, sin, inverse: false);
        ctx.save_for_backward([cos, sin]);
        return output;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        HandedBack.Release();
        var saved = ctx.get_saved_variables();
        var dx = empty([.. grad_output.shape], dtype: grad_output.dtype, device: grad_output.device);
        if (grad_output.stride(3) == 1) FusedKernels.Rope(grad_output, dx, saved[0], saved[1], inverse: true);
        else
        {
            using var dense = grad_output.contiguous();
            FusedKernels.Rope(dense, dx, saved[0], saved[1], inverse: true);
        }
        foreach (var t in saved) t.Dispose();
        grad_output.Dispose();
        HandedBack.Add(dx);
        return [dx, null!, null!];
    }
}
