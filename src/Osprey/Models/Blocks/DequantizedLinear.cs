using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Osprey.Models.Blocks;

/// <summary>
/// y = x Wᵀ + b for a quantized base W that autograd never holds densely. Forward dequantizes W, multiplies and lets the
/// dense copy go; backward dequantizes W again for grad_x = grad_y W. The base itself gets no gradient (it is frozen, as
/// in QLoRA), so neither x nor W is saved: a training step keeps only the packed weights between forward and backward.
/// Called as <c>DequantizedLinear.apply(x, bias, base)</c>; bias may be null.
/// </summary>
/// <remarks>
/// On CUDA, libtorch runs backward on its own device thread, where no dispose scope exists: every managed
/// tensor made there (the grad_output wrapper TorchSharp hands in, the gradients handed back) would hold its GPU memory
/// until a finalizer ran, which the GC has no reason to schedule — measured as ≈10 GiB more per step on a 7B QLoRA run.
/// So backward disposes what it made and was given, and the gradients it returns (libtorch copies the reference out of
/// them as soon as the callback returns) are disposed at the next backward call on the same thread or by
/// <see cref="ReleaseHandedBack"/> on it. Per thread, never across threads: another thread's gradient may not have been
/// handed over yet (its callback may still be running), and freeing it then is a use-after-free inside libtorch.
/// </remarks>
internal sealed class DequantizedLinear : SingleTensorFunction<DequantizedLinear>
{
    /// <inheritdoc />
    public override string Name => nameof(DequantizedLinear);

    /// <summary>
    /// Frees the wrappers of gradients this thread's backward calls (of every custom autograd function, see
    /// <see cref="HandedBack"/>) already handed to libtorch. The training step calls it after <c>backward()</c> returns: on
    /// the CPU backward ran on that thread; on CUDA it ran on libtorch's device thread, whose last call's gradients wait for
    /// its next call.
    /// </summary>
    public static void ReleaseHandedBack() => HandedBack.Release();

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var bias = vars[1] as Tensor;
        var quantized = (ILinearBase)vars[2];
        ctx.save_data("base", quantized);
        ctx.save_data("bias_grad", bias is { requires_grad: true });
        using var w = quantized.Dequantize();
        return nn.functional.linear(x, w, bias);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        HandedBack.Release(); // this thread's previous call has returned: its gradients are libtorch's now
        var quantized = (ILinearBase)ctx.get_data("base");
        Tensor gradInput;
        Tensor? gradBias = null;
        using (var scope = NewDisposeScope())
        {
            using (var w = quantized.Dequantize()) gradInput = grad_output.matmul(w).MoveToOuterDisposeScope();
            if ((bool)ctx.get_data("bias_grad"))
                gradBias = grad_output.reshape(-1, grad_output.shape[^1]).sum(0L).MoveToOuterDisposeScope(); // 0L: a plain 0 binds to sum(ScalarType) (Byte) and reduces everything
        }
        grad_output.Dispose(); // TorchSharp's wrapper made for this call; libtorch keeps its own reference
        HandedBack.Add(gradInput, gradBias);
        return [gradInput, gradBias!, null!];
    }
}
