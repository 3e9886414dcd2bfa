using Osprey.Models.Blocks;
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

    /// <inheritdoc />
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
    }
}
