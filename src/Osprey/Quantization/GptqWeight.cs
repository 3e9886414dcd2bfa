using Osprey.Io;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// A GPTQ linear weight as AutoGPTQ/GPTQModel store it: <c>qweight</c> int32 [in·bits/32, out] (the codes packed down
/// the input dimension), <c>qzeros</c> int32 [groups, out·bits/32] (zero points packed along the output dimension),
/// <c>scales</c> [groups, out] and <c>g_idx</c> int32 [in] (each input column's group; act-order permutes them).
/// W[n, k] = scales[g, n] · (q[k, n] − zero[g, n]) with g = g_idx[k]; the "gptq" (v1) checkpoint format stores zero − 1,
/// "gptq_v2" the zero itself. On the CPU, 4-bit layers multiply from libtorch's packed int4 layout; on CUDA, 4- and 8-bit
/// layers use <see cref="PackedWeightKernels"/>; otherwise forward dequantizes the layer into the compute dtype each time.
/// </summary>
internal sealed class GptqWeight : ILinearBase
{
    readonly Tensor _qweight, _qzeros, _scales;
    readonly Tensor? _storedGIdx; // as stored, written back on save
    readonly Tensor _groups;      // int64 [in]: the group of each input column
    readonly int _bits, _zeroOffset;

    GptqWeight(Tensor qweight, Tensor qzeros, Tensor scales, Tensor? gIdx, Tensor groups, int bits, int zeroOffset, ScalarType compute)
    {
        (_qweight, _qzeros, _scales, _storedGIdx, _groups, _bits, _zeroOffset, ComputeDType) = (qweight, qzeros, scales, gIdx, groups, bits, zeroOffset, compute);
        InFeatures = groups.shape[0];
        OutFeatures = scales.shape[1];
    }

    /// <inheritdoc />
    public long OutFeatures { get; }

    /// <inheritdoc />
    public long InFeatures { get; }

    /// <inheritdoc />
    public ScalarType ComputeDType { get; }

    /// <summary>Reads the layer's tensors; <paramref name="groupSize"/> −1 is one group over all inputs.</summary>
    public static GptqWeight Read(string file, string layer, SafetensorsCheckpoint checkpoint, int bits, int groupSize, int zeroOffset, ScalarType compute, Device device)
    {
        Tensor Int32(string name)
        {
            var full = layer + "." + name;
            if (!checkpoint.Contains(full)) throw new OspreyException($"{file}: the GPTQ layer {layer} has no '{full}' in the safetensors; the checkpoint is incomplete, so re-download it.");
            using var t = checkpoint.ReadTensor(full);
            if (t.dtype != ScalarType.Int32 || t.dim() != 2) throw new OspreyException($"{file}: '{full}' is {t.dtype} {Shape(t)} but GPTQ packs it as a 2-D int32 tensor; the checkpoint does not match its quantization_config.");
            return t.to(device);
        }
        var qweight = Int32("qweight");
        var qzeros = Int32("qzeros");
        if (!checkpoint.Contains(layer + ".scales")) throw new OspreyException($"{file}: the GPTQ layer {layer} has no '{layer}.scales' in the safetensors; the checkpoint is incomplete, so re-download it.");
        using var scalesRead = checkpoint.ReadTensor(layer + ".scales");
        if (scalesRead.dim() != 2 || !scalesRead.is_floating_point()) throw new OspreyException($"{file}: '{layer}.scales' is {scalesRead.dtype} {Shape(scalesRead)} but GPTQ stores 2-D floating-point scales [groups, out]; the checkpoint does not match its quantization_config.");
        var scales = scalesRead.to(device);
        long inFeatures = qweight.shape[0] * 32 / bits, outFeatures = scales.shape[1], groups = scales.shape[0];
        if (qweight.shape[0] * 32 % bits != 0 || qweight.shape[1] != outFeatures || qzeros.shape[0] != groups || qzeros.shape[1] * 32 != outFeatures * bits)
            throw new OspreyException($"{file}: {layer} has qweight {Shape(qweight)}, qzeros {Shape(qzeros)} and scales {Shape(scales)}, which do not fit {bits}-bit GPTQ packing ([in·{bits}/32, out], [groups, out·{bits}/32], [groups, out]); check quantization_config.bits.");
        Tensor? gIdx = null;
        Tensor groupOf;
        if (checkpoint.Contains(layer + ".g_idx"))
        {
            using var g = checkpoint.ReadTensor(layer + ".g_idx");
            gIdx = g.to(device);
            groupOf = g.to(ScalarType.Int64, device);
            using var low = groupOf.min();
            using var high = groupOf.max();
            if (groupOf.shape.Length != 1 || groupOf.shape[0] != inFeatures || low.item<long>() < 0 || high.item<long>() >= groups)
                throw new OspreyException($"{file}: '{layer}.g_idx' must hold a group index below {groups} for each of the {inFeatures} inputs; the checkpoint is damaged.");
        }
        else
        {
            var size = groupSize <= 0 ? inFeatures : groupSize;
            groupOf = arange(inFeatures, dtype: ScalarType.Int64, device: device).div(size, rounding_mode: RoundingMode.floor);
        }
        return new GptqWeight(qweight, qzeros, scales, gIdx, groupOf, bits, zeroOffset, compute);
    }

    /// <summary>
    /// A weight from GPTQ's result, packed as the "gptq" (v1) checkpoint format stores it: codes [out, in], float16
    /// scales and zero points (stored minus one) [groups, out], g_idx [in].
    /// </summary>
    public static GptqWeight Pack(GptqResult result, int bits, ScalarType compute)
    {
        using var codesT = result.Codes.t().contiguous();
        var qweight = QuantPacking.PackGptqRows(codesT, bits);
        using var stored = result.Zeros.sub(1);
        using var zerosT = stored.t().contiguous();
        using var packedT = QuantPacking.PackGptqRows(zerosT, bits);
        var qzeros = packedT.t().contiguous();
        var scales = result.Scales.to_type(ScalarType.Float16);
        var gIdx = result.GroupIndex.clone();
        // The weight owns these from now on: a caller's dispose scope must not free them.
        return new GptqWeight(qweight.DetachFromDisposeScope(), qzeros.DetachFromDisposeScope(), scales.DetachFromDisposeScope(), gIdx.DetachFromDisposeScope(),
            gIdx.to_type(ScalarType.Int64).DetachFromDisposeScope(), bits, 1, compute);
    }

    static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    /// <inheritdoc />
    public Tensor Dequantize()
    {
        if (CudaKernels)
            using (var transposed = PackedWeightKernels.GptqDequantizeTransposed(_qweight, _qzeros, _scales, _groups, _bits, _zeroOffset, InFeatures, OutFeatures, ComputeDType))
                return transposed.t().contiguous();
        return DequantizePortable();
    }

    /// <summary>The dequantized weight [out, in] by tensor operations (any device; what the CUDA kernels are checked against).</summary>
    internal Tensor DequantizePortable()
    {
        using var scope = NewDisposeScope();
        var codes = PackedInts.UnpackGptqRows(_qweight, _bits);                   // [in, out]
        var zeros = PackedInts.UnpackGptqRows(_qzeros.t(), _bits).t();            // [groups, out]
        if (_zeroOffset != 0) zeros = zeros.add(_zeroOffset);
        // (q − z) is a small integer and the scale an fp16 value, so the float32 product is exact.
        var w = codes.sub(zeros.index_select(0, _groups)).to_type(ScalarType.Float32)
            .mul(_scales.to_type(ScalarType.Float32).index_select(0, _groups));
        return w.t().contiguous().to_type(ComputeDType).MoveToOuterDisposeScope();
    }

    Tensor? _packed, _scaleAndOffset; // the CPU int4 layout, built at the first CPU forward
    long _groupSize;
    bool _noPacked;                   // this layer cannot use it (bits, act-order, shapes, libtorch)

    /// <summary>
    /// On the CPU, 4-bit layers multiply straight from libtorch's packed int4 layout (<c>_weight_int4pack_mm_for_cpu</c>,
    /// 0.5 byte per weight) instead of dequantizing the whole layer each call. Its weights are (q − 8)·scale + offset per
    /// group; with offset = scale·(8 − zero) that is GPTQ's scale·(q − zero). Scale and offset are held in the compute
    /// dtype, bfloat16 (they round as the dequantized weight would). Groups must be contiguous runs
    /// of 32, 64, 128 or 256 inputs (no act-order permutation) and the output count a multiple of 16; other layers dequantize.
    /// </summary>
    public Tensor? TryFusedLinear(Tensor x)
    {
        if (x.device_type == DeviceType.CUDA) return TryCudaLinear(x);
        // bfloat16 only: libtorch's float32 path of this kernel is ~20× slower than dequantizing (measured, libtorch 2.10).
        if (_noPacked || x.device_type != DeviceType.CPU || _qweight.device_type != DeviceType.CPU || x.dtype != ComputeDType || x.dtype != ScalarType.BFloat16) return null;
        if (_packed is null && !TryPack()) return null;
        using var flat = x.reshape(-1, InFeatures);
        var y = CpuPackedMatmul.Int4Mm(flat, _packed!, _groupSize, _scaleAndOffset!);
        if (y is null)
        {
            _noPacked = true;
            return null;
        }
        if (x.dim() == 2) return y;
        var shape = x.shape.ToArray();
        shape[^1] = OutFeatures;
        using (y) return y.reshape(shape);
    }

    bool? _cudaKernels;

    /// <summary>On CUDA, 4- and 8-bit layers use <see cref="PackedWeightKernels"/> (decided once per layer).</summary>
    bool CudaKernels => _cudaKernels ??= _qweight.device_type == DeviceType.CUDA
        && PackedWeightKernels.Supports(_bits, _scales.dtype, ComputeDType)
        && _qweight.is_contiguous() && _qzeros.is_contiguous() && _scales.is_contiguous() && _groups.is_contiguous()
        && PackedWeightKernels.Unavailable(_qweight) is null;

    /// <summary>CUDA: the fused product for a few rows, else one dequantizing kernel and cuBLAS on the transposed weight.</summary>
    Tensor? TryCudaLinear(Tensor x)
    {
        if (!CudaKernels || x.dtype != ComputeDType || x.device_index != _qweight.device_index) return null;
        var rows = x.numel() / InFeatures;
        using var flat = x.reshape(rows, InFeatures).contiguous();
        Tensor y;
        if (rows <= PackedWeightKernels.MaxFusedRows && PackedWeightKernels.FusedGemv)
            y = PackedWeightKernels.GptqGemv(flat, _qweight, _qzeros, _scales, _groups, _bits, _zeroOffset, OutFeatures);
        else
            using (var transposed = PackedWeightKernels.GptqDequantizeTransposed(_qweight, _qzeros, _scales, _groups, _bits, _zeroOffset, InFeatures, OutFeatures, ComputeDType))
                y = flat.matmul(transposed);
        if (x.dim() == 2) return y;
        var shape = x.shape.ToArray();
        shape[^1] = OutFeatures;
        using (y) return y.reshape(shape);
    }

    bool TryPack()
    {
        long groups = _scales.shape[0];
        _groupSize = InFeatures % groups == 0 ? InFeatures / groups : 0;
        if (_bits != 4 || _groupSize is not (32 or 64 or 128 or 256) || OutFeatures % 16 != 0 || CpuPackedMatmul.Unavailable() is not null)
        {
            _noPacked = true;
            return false;
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using (var contiguousGroups = arange(InFeatures, dtype: ScalarType.Int64).div(_groupSize, rounding_mode: RoundingMode.floor))
            if (!_groups.equal(contiguousGroups).all().item<bool>())
            {
                _noPacked = true; // act-order: the kernel's groups are contiguous runs
                return false;
            }
        var codes = PackedInts.UnpackGptqRows(_qweight, _bits).t().to_type(ScalarType.Int32);    // [out, in]
        var zeros = PackedInts.UnpackGptqRows(_qzeros.t(), _bits).t().to_type(ScalarType.Float32); // [groups, out]
        if (_zeroOffset != 0) zeros = zeros.add(_zeroOffset);
        var scale = _scales.to_type(ScalarType.Float32);
        // scale·(q − z) = (q − 8)·scale + scale·(8 − z); both terms are exact in float32 (an fp16 scale times a small integer).
        var offset = scale.mul(zeros.neg().add(8));
        _scaleAndOffset = stack([scale, offset], 2).to_type(ComputeDType).contiguous().DetachFromDisposeScope();
        _packed = CpuPackedMatmul.Int4Pack(codes).DetachFromDisposeScope();
        return true;
    }

    /// <inheritdoc />
    Runtime.Cpu.CpuMatrix? _cpuMatrix;
    bool _noCpuMatrix;

    /// <summary>
    /// The 4-bit codes repacked for the managed CPU decoder (<see cref="Runtime.Cpu.Int4GroupMatrix"/>: w = code·scale + offset,
    /// offset = −scale·zero); null for other widths, act-order groups, groups that are not a multiple of 32 columns, or off the CPU.
    /// </summary>
    public Runtime.Cpu.CpuMatrix? CpuMatrix()
    {
        if (_cpuMatrix is not null || _noCpuMatrix) return _cpuMatrix;
        long groups = _scales.shape[0];
        var groupSize = InFeatures % groups == 0 ? InFeatures / groups : 0;
        _noCpuMatrix = true;
        if (_bits != 4 || _qweight.device_type != DeviceType.CPU || groupSize == 0 || groupSize % Runtime.Cpu.CpuMatrix.ColumnMultiple != 0) return null;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using (var contiguousGroups = arange(InFeatures, dtype: ScalarType.Int64).div(groupSize, rounding_mode: RoundingMode.floor))
            if (!_groups.equal(contiguousGroups).all().item<bool>()) return null;
        var codes = PackedInts.UnpackGptqRows(_qweight, _bits).t().to_type(ScalarType.Byte).contiguous();      // [out, in]
        var zeros = PackedInts.UnpackGptqRows(_qzeros.t(), _bits).t().to_type(ScalarType.Float32);             // [groups, out]
        if (_zeroOffset != 0) zeros = zeros.add(_zeroOffset);
        var scale = _scales.to_type(ScalarType.Float32);
        var offset = scale.mul(zeros).neg();
        var scaleRows = scale.t().contiguous();
        var offsetRows = offset.t().contiguous();
        _cpuMatrix = new Runtime.Cpu.Int4GroupMatrix(codes.data<byte>().ToArray(), scaleRows.data<float>().ToArray(), offsetRows.data<float>().ToArray(),
            (int)OutFeatures, (int)InFeatures, (int)groupSize);
        _noCpuMatrix = false;
        return _cpuMatrix;
    }

    public IEnumerable<(string Name, Tensor Tensor)> CheckpointTensors()
    {
        yield return ("qweight", _qweight);
        yield return ("qzeros", _qzeros);
        yield return ("scales", _scales);
        if (_storedGIdx is not null) yield return ("g_idx", _storedGIdx);
    }

    /// <inheritdoc />
    public ILinearBase CopyTo(Device device) =>
        new GptqWeight(_qweight.to(device).DetachFromDisposeScope(), _qzeros.to(device).DetachFromDisposeScope(),
            _scales.to(device).DetachFromDisposeScope(), _storedGIdx?.to(device).DetachFromDisposeScope(),
            _groups.to(device).DetachFromDisposeScope(), _bits, _zeroOffset, ComputeDType);

    /// <inheritdoc />
    public void Dispose()
    {
        _qweight.Dispose();
        _qzeros.Dispose();
        _scales.Dispose();
        _storedGIdx?.Dispose();
        _groups.Dispose();
        _packed?.Dispose();
        _scaleAndOffset?.Dispose();
        _cpuMatrix?.Dispose();
    }
}
