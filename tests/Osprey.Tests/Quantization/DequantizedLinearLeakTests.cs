using Osprey.Models.Blocks;
using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>The CUDA QLoRA leak, reproduced on the CPU: see the test.</summary>
[Collection(nameof(CountsLiveTensorsCollection))]
public sealed class DequantizedLinearLeakTests
{
    public DequantizedLinearLeakTests() => TorchRuntime.Initialize(DeviceSpec.Cpu);

    /// <summary>
    /// On CUDA libtorch runs backward on its own thread, outside every dispose scope, so the tensors backward makes and is
    /// handed live until a finalizer runs (≈10 GiB per step on a 7B QLoRA run). Here backward runs outside every scope on
    /// a fresh thread, as on libtorch's, and TorchSharp's count of live tensor wrappers (process-wide, hence a collection
    /// that runs alone) must not grow with the steps. Without the fix it grew by two (grad_output, grad_x) per step.
    /// </summary>
    [Fact]
    public void BackwardOnAThreadWithoutADisposeScopeLeavesNoLiveTensorsBehind()
    {
        using var g = new Generator(5, CPU);
        using var dense = randn([32, 64], generator: g);
        using var layer = new LinearLayer(64, 32, true, ScalarType.Float32, CPU);
        using (no_grad()) layer.Bias!.normal_(0, 1, g);
        layer.UseBase(FourBitWeight.Quantize(dense, FourBitType.Nf4, true, ScalarType.Float32));
        LoraWeights.AttachTo(layer, new LoraLayerSettings(4, 2.0, 0, false), g, () => null);
        using var x = randn([3, 64], generator: g).requires_grad_(true); // as a layer inside a model sees it

        long? afterFirst = null, afterLast = null;
        var thread = new Thread(() =>
        {
            for (var step = 0; step < 6; step++)
            {
                Tensor loss;
                using (var scope = NewDisposeScope()) // forward's own tensors, as the training loop scopes them
                    loss = layer.forward(x).square().sum().MoveToOuterDisposeScope();
                loss.backward(); // CPU autograd runs backward on the calling thread: here, outside every scope
                loss.Dispose();
                DequantizedLinear.ReleaseHandedBack();
                var live = Tensor.TotalCount;
                if (step == 0) afterFirst = live;
                afterLast = live;
            }
        });
        thread.Start();
        thread.Join();
        Assert.NotNull(afterFirst);
        Assert.Equal(afterFirst, afterLast);
    }
}
