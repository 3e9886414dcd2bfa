using Osprey.Models.Blocks;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// A linear weight in LLM.int8's form (bitsandbytes Linear8bitLt): int8 codes CB [out, in] and one float32 scale per row
/// (SCB, the row's absmax). Forward multiplies by the dequantized weight in the compute dtype (weight-only int8).
/// </summary>
internal sealed class Int8Weight : ILinearBase
{
    /// <summary>int8 codes [out, in].</summary>
    public Tensor CB { get; }

    /// <summary>float32 absmax of each row.</summary>
    public Tensor SCB { get; }

    /// <inheritdoc />
    public long OutFeatures => CB.shape[0];

    /// <inheritdoc />
    public long InFeatures => CB.shape[1];

    /// <inheritdoc />
    public ScalarType ComputeDType { get; }

    /// <summary>Wraps codes and scales.</summary>
    public Int8Weight(Tensor cb, Tensor scb, ScalarType compute)
    {
        (CB, SCB, ComputeDType) = (cb, scb.to_type(ScalarType.Float32), compute);
    }

    /// <summary>Quantizes a dense [out, in] weight row-wise.</summary>
    public static Int8Weight Quantize(Tensor weight, ScalarType compute)
    {
        var (cb, scb) = BnbFunctional.QuantizeRowwise(weight);
        return new Int8Weight(cb, scb, compute);
    }

    /// <inheritdoc />
    public Tensor Dequantize()
    {
        var w = BnbFunctional.DequantizeRowwise(CB, SCB);
        if (w.dtype == ComputeDType) return w;
        using (w) return w.to_type(ComputeDType);
    }

    Tensor? _rowScales; // SCB / 127 in the compute dtype, for the CPU product
    Tensor? _alignedCodes; // CB, or its 64-byte-aligned copy when CB sits on memory libtorch did not allocate

    /// <summary>
    /// On the CPU, x Wᵀ straight from the int8 codes (libtorch's <c>_weight_int8pack_mm</c>: Σₖ x·code in float32, times
    /// the row's scale SCB/127 held in the compute dtype), reading 1 byte per weight instead of building the dense copy.
    /// The result differs from the dequantized product only by where the compute dtype rounds (the scale, not each weight).
    /// </summary>
    public Tensor? TryFusedLinear(Tensor x)
    {
        if (x.device_type != DeviceType.CPU || CB.device_type != DeviceType.CPU || x.dtype != ComputeDType || CpuPackedMatmul.Unavailable() is not null) return null;
        // Kept across calls, so out of the caller's dispose scope.
        if (_rowScales is null)
            using (no_grad())
            {
                _rowScales = SCB.div(127f).to_type(ComputeDType).contiguous().DetachFromDisposeScope();
                var aligned = CpuPackedMatmul.Aligned(CB);
                _alignedCodes = ReferenceEquals(aligned, CB) ? CB : aligned.DetachFromDisposeScope();
            }
        using var flat = x.reshape(-1, InFeatures);
        var y = CpuPackedMatmul.Int8Mm(flat, _alignedCodes!, _rowScales);
        if (y is null) return null;
        if (x.dim() == 2) return y;
        var shape = x.shape.ToArray();
        shape[^1] = OutFeatures;
        using (y) return y.reshape(shape);
    }

    /// <inheritdoc />
    Runtime.Cpu.CpuMatrix? _cpuMatrix;

    /// <summary>The codes read in place with SCB / 127 per row (the managed CPU decoder); null off the CPU or for widths it does not tile.</summary>
    public unsafe Runtime.Cpu.CpuMatrix? CpuMatrix()
    {
        if (_cpuMatrix is not null) return _cpuMatrix;
        if (CB.device_type != DeviceType.CPU || !CB.is_contiguous() || InFeatures % Runtime.Cpu.CpuMatrix.ColumnMultiple != 0) return null;
        using var scales = SCB.div(127f).to_type(ScalarType.Float32).contiguous();
        return _cpuMatrix = new Runtime.Cpu.Int8RowMatrix((sbyte*)Runtime.Cpu.TensorMemory.Address(CB), scales.data<float>().ToArray(), (int)InFeatures, CB);
    }

    public IEnumerable<(string Name, Tensor Tensor)> CheckpointTensors()
    {
        yield return ("weight", CB);
        yield return ("SCB", SCB);
        // Linear8bitLt's state dict marks the row-major layout (0) beside SCB.
        yield return ("weight_format", tensor((byte)0));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        CB.Dispose();
        SCB.Dispose();
        _rowScales?.Dispose();
        _cpuMatrix?.Dispose();
        if (!ReferenceEquals(_alignedCodes, CB)) _alignedCodes?.Dispose();
    }
}
