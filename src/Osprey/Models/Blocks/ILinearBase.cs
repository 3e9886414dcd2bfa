using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// The base weight of a <see cref="LinearLayer"/> held in a form other than a dense matrix (a bitsandbytes 4-bit or
/// 8-bit weight, see Osprey.Quantization). The layer keeps only this form in memory and asks for the dense [out, in]
/// matrix at each forward, so a whole model is dense only one layer at a time. Plugged in from outside the model
/// through <see cref="LinearLayer.UseBase"/>, as adapters are.
/// </summary>
internal interface ILinearBase : IDisposable
{
    /// <summary>Output features (rows of the dense weight).</summary>
    long OutFeatures { get; }

    /// <summary>Input features (columns of the dense weight).</summary>
    long InFeatures { get; }

    /// <summary>The dtype forward runs in (bitsandbytes' compute dtype); the input is cast to it and the output back.</summary>
    ScalarType ComputeDType { get; }

    /// <summary>A new dense [out, in] weight in <see cref="ComputeDType"/> on the base's device; the caller owns it.</summary>
    Tensor Dequantize();

    /// <summary>
    /// x Wᵀ computed without building the dense weight, when this base has a fused kernel for x's shape and device; null
    /// otherwise (the caller dequantizes). Inference only: it records nothing for autograd.
    /// </summary>
    Tensor? TryFusedLinear(Tensor x) => null;

    /// <summary>
    /// This weight as the managed CPU decoder multiplies it (<see cref="Runtime.Cpu.CpuMatrix"/>), made once and owned
    /// by the base; null when there is no such kernel for its format.
    /// </summary>
    Runtime.Cpu.CpuMatrix? CpuMatrix() => null;

    /// <summary>The checkpoint tensors of this weight by name relative to the layer (<c>weight</c>, <c>weight.absmax</c>, <c>SCB</c>, ...).</summary>
    IEnumerable<(string Name, Tensor Tensor)> CheckpointTensors();

    /// <summary>The safetensors dtype a checkpoint tensor is stored as when its TorchSharp type cannot say it (float8 held as bytes), else null.</summary>
    string? StoredDType(string name) => null;

    /// <summary>
    /// This weight's tensors on <paramref name="device"/> as a new base (the caller owns it; this one stays as it is), or
    /// null when the format cannot move. Calibrated exports keep finished layers in host memory with it.
    /// </summary>
    ILinearBase? CopyTo(Device device) => null;
}
