using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// One AdamW update of a flat float32 buffer and its moments in place, as torch.optim.AdamW computes it: decoupled decay
/// p ← p·(1 − rate·decay), m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g², p ← p − (rate / bc1) · m / (√v / bc2 + ε), where
/// bc1 = 1 − β1ᵗ and bc2 = √(1 − β2ᵗ). On CUDA, where training uses the fused kernels, one kernel does it
/// (<see cref="FusedKernels.AdamWStep"/>); elsewhere the tensor ops below.
/// </summary>
internal static class AdamWUpdate
{
    public static void Apply(Tensor master, Tensor expAvg, Tensor expAvgSq, Tensor grad, double rate, double decay, double bc1,
        double bc2Sqrt, double beta1, double beta2, double epsilon)
    {
        if (FusedKernels.Autograd && FusedKernels.AdamWFits(master, expAvg, expAvgSq, grad))
        {
            FusedKernels.AdamWStep(master, expAvg, expAvgSq, grad, 1 - rate * decay, beta1, beta2, bc2Sqrt, epsilon, -rate / bc1, decay != 0);
            return;
        }
        // Scalars held across their calls (a temporary one's finalizer may free it mid-call; Runtime/Scalars says why).
        if (decay != 0)
        {
            using var keep = (1 - rate * decay).ToScalar();
            master.mul_(keep);
        }
        using var oneMinusBeta1 = tensor(1 - beta1); // lerp_ takes its weight as a tensor
        using var b2 = beta2.ToScalar();
        using var oneMinusBeta2 = (1 - beta2).ToScalar();
        using var correction = bc2Sqrt.ToScalar();
        using var eps = epsilon.ToScalar();
        using var step = (-rate / bc1).ToScalar();
        expAvg.lerp_(grad, oneMinusBeta1);
        expAvgSq.mul_(b2).addcmul_(grad, grad, oneMinusBeta2);
        using var root = expAvgSq.sqrt();
        using var denom = root.div_(correction).add_(eps);
        master.addcdiv_(expAvg, denom, step);
    }
}
