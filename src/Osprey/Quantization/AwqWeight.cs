using Osprey.Io;
using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// An AWQ linear weight in AutoAWQ's GEMM packing: <c>qweight</c> int32 [in, out/8] and <c>qzeros</c> int32
/// [groups, out/8], eight 4-bit values per word in the interleaved order [0, 2, 4, 6, 1, 3, 5, 7], and <c>scales</c>
/// [groups, out]. W[n, k] = scales[g, n] · (q[k, n] − zero[g, n]) with g = k / group_size.
/// </summary>
internal sealed class AwqWeight : ILinearBase
{
    readonly Tensor _qweight, _qzeros, _scales, _groups;

    AwqWeight(Tensor qweight, Tensor qzeros, Tensor scales, Tensor groups, ScalarType compute)
    {
        (_qweight, _qzeros, _scales, _groups, ComputeDType) = (qweight, qzeros, scales, groups, compute);
        InFeatures = qweight.shape[0];
        OutFeatures = scales.shape[1];
    }

    /// <inheritdoc />
    public long OutFeatures { get; }

    /// <inheritdoc />
    public long InFeatures { get; }

    /// <inheritdoc />
    public ScalarType ComputeDType { get; }

    /// <summary>Reads the layer's tensors.</summary>
    public static AwqWeight Read(string file, string layer, SafetensorsCheckpoint checkpoint, int groupSize, ScalarType compute, Device device)
    {
        Tensor Load(string name)
        {
            var full = layer + "." + name;
            if (!checkpoint.Contains(full)) throw new OspreyException($"{file}: the AWQ layer {layer} has no '{full}' in the safetensors; the checkpoint is incomplete, so re-download it.");
            using var t = checkpoint.ReadTensor(full);
            return t.to(device);
        }
        var (qweight, qzeros, scales) = (Load("qweight"), Load("qzeros"), Load("scales"));
        long inFeatures = qweight.shape[0], outFeatures = scales.shape[1];
        var size = groupSize <= 0 ? inFeatures : groupSize;
        if (qweight.dtype != ScalarType.Int32 || qzeros.dtype != ScalarType.Int32 || qweight.shape[1] * 8 != outFeatures || qzeros.shape[1] * 8 != outFeatures
            || scales.shape[0] != qzeros.shape[0] || scales.shape[0] * size != inFeatures)
            throw new OspreyException($"{file}: {layer} has qweight {qweight.dtype} [{string.Join(", ", qweight.shape)}], qzeros [{string.Join(", ", qzeros.shape)}] and scales [{string.Join(", ", scales.shape)}], which do not fit AWQ GEMM packing with group_size {groupSize} ([in, out/8] int32, [in/group_size, out/8] int32, [in/group_size, out]).");
        var groups = arange(inFeatures, dtype: ScalarType.Int64, device: device).div(size, rounding_mode: RoundingMode.floor);
        return new AwqWeight(qweight, qzeros, scales, groups, compute);
    }

    /// <summary>A weight from AWQ's codes [out, in] and its scales/zeros [groups, out], packed in AutoAWQ's GEMM layout with float16 scales.</summary>
    public static AwqWeight Pack(Tensor codes, Tensor scales, Tensor zeros, int groupSize, ScalarType compute)
    {
        using var codesT = codes.t().contiguous();
        var qweight = QuantPacking.PackAwq(codesT);
        var qzeros = QuantPacking.PackAwq(zeros);
        var inFeatures = codes.shape[1];
        var size = groupSize <= 0 ? inFeatures : groupSize;
        var groups = arange(inFeatures, dtype: ScalarType.Int64, device: codes.device).div(size, rounding_mode: RoundingMode.floor);
        // The weight owns these from now on: a caller's dispose scope must not free them.
        return new AwqWeight(qweight.DetachFromDisposeScope(), qzeros.DetachFromDisposeScope(), scales.to_type(ScalarType.Float16).DetachFromDisposeScope(), groups.DetachFromDisposeScope(), compute);
    }

    /// <inheritdoc />
    public Tensor Dequantize()
    {
        if (CudaKernels)
            using (var transposed = PackedWeightKernels.AwqDequantizeTransposed(_qweight, _qzeros, _scales, _groups, InFeatures, OutFeatures, ComputeDType))
                return transposed.t().contiguous();
        return DequantizePortable();
    }

    bool? _cudaKernels;

    /// <summary>On CUDA, layers use <see cref="PackedWeightKernels.AwqDequantizeTransposed"/> (decided once per layer).</summary>
    bool CudaKernels => _cudaKernels ??= _qweight.device_type == DeviceType.CUDA
        && PackedWeightKernels.SupportsAwq(_scales.dtype, ComputeDType)
        && _qweight.is_contiguous() && _qzeros.is_contiguous() && _scales.is_contiguous() && _groups.is_contiguous()
        && PackedWeightKernels.Unavailable(_qweight) is null;

    /// <summary>CUDA: one dequantizing kernel writes Wᵀ, then cuBLAS multiplies by it (no transpose copy).</summary>
    public Tensor? TryFusedLinear(Tensor x)
    {
        if (x.device_type != DeviceType.CUDA || !CudaKernels || x.dtype != ComputeDType || x.device_index != _qweight.device_index) return null;
        var rows = x.numel() / InFeatures;
        using var flat = x.reshape(rows, InFeatures);
        Tensor y;
        using (var transposed = PackedWeightKernels.AwqDequantizeTransposed(_qweight, _qzeros, _scales, _groups, InFeatures, OutFeatures, ComputeDType))
            y = flat.matmul(transposed);
        if (x.dim() == 2) return y;
        var shape = x.shape.ToArray();
        shape[^1] = OutFeatures;
        using (y) return y.reshape(shape);
    }

    /// <summary>The dequantized weight [out, in] by tensor operations (any device; what the CUDA kernel is checked against).</summary>
    internal Tensor DequantizePortable()
    {
        using var scope = NewDisposeScope();
        var codes = PackedInts.UnpackAwq(_qweight);  // [in, out]
        var zeros = PackedInts.UnpackAwq(_qzeros);   // [groups, out]
        // A 4-bit difference times an fp16 scale: exact in float32.
        var w = codes.sub(zeros.index_select(0, _groups)).to_type(ScalarType.Float32)
            .mul(_scales.to_type(ScalarType.Float32).index_select(0, _groups));
        return w.t().contiguous().to_type(ComputeDType).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public IEnumerable<(string Name, Tensor Tensor)> CheckpointTensors()
    {
        yield return ("qweight", _qweight);
        yield return ("qzeros", _qzeros);
        yield return ("scales", _scales);
    }

    /// <inheritdoc />
    public ILinearBase CopyTo(Device device) =>
        new AwqWeight(_qweight.to(device).DetachFromDisposeScope(), _qzeros.to(device).DetachFromDisposeScope(),
            _scales.to(device).DetachFromDisposeScope(), _groups.to(device).DetachFromDisposeScope(), ComputeDType);

    /// <inheritdoc />
    public void Dispose()
    {
        _qweight.Dispose();
        _qzeros.Dispose();
        _scales.Dispose();
        _groups.Dispose();
    }
}
