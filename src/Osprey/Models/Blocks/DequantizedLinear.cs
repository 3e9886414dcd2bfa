using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Osprey.Models.Blocks;

/// <summary>
/// y = x Wᵀ + b for a quantized base W that autograd never holds densely. Forward dequantizes W, multiplies and lets the
/// dense copy go; backward dequantizes W again for grad_x = grad_y W. The base itself gets no gradient (it is frozen, as
/// in QLoRA), so neither x nor W is saved: a training step keeps only the packed weights between forward and backward.
/// Called as <c>DequantizedLinear.apply(x, bias, base)</c>; bias may be null.
/// </summary>
internal sealed class DequantizedLinear : SingleTensorFunction<DequantizedLinear>
{
    /// <inheritdoc />
    public override string Name => nameof(DequantizedLinear);

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
        var quantized = (ILinearBase)ctx.get_data("base");
        Tensor gradInput;
        using (var w = quantized.Dequantize()) gradInput = grad_output.matmul(w);
        var gradBias = (bool)ctx.get_data("bias_grad") ? grad_output.reshape(-1, grad_output.shape[^1]).sum(0) : null;
        return [gradInput, gradBias!, null!];
    }
}
