using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Osprey.Models.Blocks;

/// <summary>
/// RMSNorm through the fused CUDA kernels with autograd: forward keeps x and the float32 1/rms per row, backward runs the
/// fused gradient kernel for x and, when the weight trains (full fine-tuning), reduces its gradient with tensor ops.
/// Called as <c>FusedRmsNormFunction.apply(x, weight, eps, offset, weightTrains)</c> with x contiguous; the caller says
/// whether the weight trains (inside forward the inputs TorchSharp hands over do not say: seen on the H100).
/// </summary>
internal sealed class FusedRmsNormFunction : SingleTensorFunction<FusedRmsNormFunction>
{
    /// <inheritdoc />
    public override string Name => nameof(FusedRmsNormFunction);

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        var offset = (bool)vars[3];
        var (y, _, inv) = FusedKernels.RmsNorm(x, null, weight, (double)vars[2], offset, keepInv: true);
        // TorchSharp keeps the list and saves the tensors after forward returns: inv must stay valid until then (the
        // caller's dispose scope, if any, frees its wrapper later; the saved variable holds its own reference).
        ctx.save_for_backward([x, weight, inv!]);
        ctx.save_data("offset", offset);
        ctx.save_data("weight_grad", (bool)vars[4]);
        return y;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        HandedBack.Release();
        var saved = ctx.get_saved_variables();
        var (x, weight, inv) = (saved[0], saved[1], saved[2]);
        var offset = (bool)ctx.get_data("offset");
        Tensor dx;
        Tensor? dw = null;
        using (var scope = NewDisposeScope())
        {
            dx = FusedKernels.RmsNormBackward(grad_output, x, weight, inv, offset).MoveToOuterDisposeScope();
            if ((bool)ctx.get_data("weight_grad"))
            {
                // As the tensor path differentiates it: Llama's weight multiplies round(normed), Gemma's scale the float32 normed.
                var normed = x.to_type(ScalarType.Float32) * inv.unsqueeze(-1);
                var factor = offset ? normed : normed.to_type(x.dtype).to_type(ScalarType.Float32);
                var rows = grad_output.to_type(ScalarType.Float32).reshape(-1, x.shape[^1]) * factor.reshape(-1, x.shape[^1]);
                dw = rows.sum(0L).to_type(weight.dtype).MoveToOuterDisposeScope(); // 0L, not 0: see DequantizedLinear
            }
        }
        foreach (var t in saved) t.Dispose();
        grad_output.Dispose();
        HandedBack.Add(dx, dw);
        return [dx, dw!, null!, null!, null!];
    }
}
