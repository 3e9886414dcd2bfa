using Osprey.Io;
using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// An FP8 (float8_e4m3fn) linear weight with its scales: 2-D blocks (<c>weight_scale_inv</c> [⌈out/r⌉, ⌈in/c⌉]
/// float32 for <c>weight_block_size</c> [r, c], as the official Qwen3-FP8 and DeepSeek-V3 checkpoints ship), one scale
/// per tensor (<c>weight_scale</c> [] or [1]) or one per output row (<c>weight_scale</c> [out, 1], fbgemm).
/// W = e4m3(byte) · scale. TorchSharp has no float8 type, so the bytes are decoded with a 256-entry table.
/// </summary>
internal sealed class Fp8Weight : ILinearBase
{
    readonly Tensor _codes;  // uint8 [out, in]
    readonly Tensor _scale;  // float32: [rows, cols] blocks, [] / [1] per tensor, [out, 1] per row
    readonly Tensor _table;  // float32 [256] on the weight's device
    readonly long[]? _block; // [r, c] for block scales

    Fp8Weight(Tensor codes, Tensor scale, long[]? block, ScalarType compute)
    {
        (_codes, _scale, _block, ComputeDType) = (codes, scale, block, compute);
        _table = tensor(E4M3Table, device: codes.device).DetachFromDisposeScope();
    }

    /// <summary>float8_e4m3fn: sign bit 7, exponent bits 6–3 with bias 7, mantissa bits 2–0; no infinities, S.1111.111 is NaN.</summary>
    internal static readonly float[] E4M3Table = Enumerable.Range(0, 256).Select(b =>
    {
        int e = (b >> 3) & 15, m = b & 7;
        var magnitude = e == 15 && m == 7 ? float.NaN : e == 0 ? MathF.ScaleB(m, -9) : MathF.ScaleB(8 + m, e - 10);
        return (b & 0x80) != 0 ? -magnitude : magnitude;
    }).ToArray();

    /// <inheritdoc />
    public long OutFeatures => _codes.shape[0];

    /// <inheritdoc />
    public long InFeatures => _codes.shape[1];

    /// <inheritdoc />
    public ScalarType ComputeDType { get; }

    /// <summary>Reads <c>weight</c> and its scale (<c>weight_scale_inv</c> with <paramref name="block"/>, else <c>weight_scale</c>).</summary>
    public static Fp8Weight Read(string file, string layer, SafetensorsCheckpoint checkpoint, long[]? block, ScalarType compute, Device device)
    {
        var weightName = layer + ".weight";
        var entry = checkpoint.Entry(weightName);
        if (entry.DType != "F8_E4M3" || entry.Shape.Length != 2)
            throw new OspreyException($"{file}: '{weightName}' is {entry.DType} [{string.Join(", ", entry.Shape)}] beside FP8 scales, but Osprey reads 2-D float8_e4m3fn (F8_E4M3) weights; the checkpoint does not match its quantization_config.");
        long rows = entry.Shape[0], cols = entry.Shape[1];
        var scaleName = layer + (checkpoint.Contains(layer + ".weight_scale_inv") ? ".weight_scale_inv" : ".weight_scale");
        using var scaleRead = checkpoint.ReadTensor(scaleName);
        var blocked = scaleName.EndsWith("_inv", StringComparison.Ordinal);
        if (blocked && block is null)
            throw new OspreyException($"{file}: '{scaleName}' holds block scales but quantization_config has no weight_block_size; add it (e.g. [128, 128]).");
        var ok = blocked
            ? scaleRead.shape is [var r, var c] && r == (rows + block![0] - 1) / block[0] && c == (cols + block[1] - 1) / block[1]
            : scaleRead.numel() == 1 || (scaleRead.numel() == rows && scaleRead.shape[0] == rows);
        if (!ok)
            throw new OspreyException($"{file}: '{scaleName}' is [{string.Join(", ", scaleRead.shape)}], which is neither {(blocked ? $"one scale per {block![0]}×{block[1]} block of the [{rows}, {cols}] weight" : $"one scale for the tensor nor one per each of its {rows} rows")}; the checkpoint does not match its quantization_config.");
        using var codes = checkpoint.ReadBytes(weightName);
        var scale = scaleRead.to(ScalarType.Float32, device);
        if (!blocked && scale.numel() == rows && scale.dim() == 1) scale = scale.unsqueeze(1);
        return new Fp8Weight(codes.to(device), scale, blocked ? block : null, compute);
    }

    /// <summary>
    /// Quantizes w [out, in] to e4m3 with <paramref name="scheme"/>'s scales, each max|w|/448 of its part: one per tensor
    /// (<c>weight_scale</c> []), one per output row (<c>weight_scale</c> [out, 1]) or one per 128×128 block
    /// (<c>weight_scale_inv</c>, the Qwen3-FP8/DeepSeek-V3 layout). The scale is what dequantization multiplies by.
    /// </summary>
    public static Fp8Weight Quantize(Tensor w, Fp8Scheme scheme, ScalarType compute)
    {
        using var scope = NewDisposeScope();
        var f = w.to_type(ScalarType.Float32);
        long rows = f.shape[0], cols = f.shape[1];
        Tensor scale, expanded;
        long[]? block = null;
        switch (scheme)
        {
            case Fp8Scheme.Tensor:
                scale = f.abs().max().clamp_min(1e-12).div(Fp8Encoding.Max);
                expanded = scale;
                break;
            case Fp8Scheme.Channel:
                scale = f.abs().amax([1], keepdim: true).clamp_min(1e-12).div(Fp8Encoding.Max);
                expanded = scale;
                break;
            default:
                block = [128, 128];
                long r = (rows + 127) / 128, c = (cols + 127) / 128;
                // Pad to whole blocks with zeros (they never raise a block's max |w|).
                var padded = nn.functional.pad(f, [0, c * 128 - cols, 0, r * 128 - rows]);
                scale = padded.view(r, 128, c, 128).abs().amax([1, 3]).clamp_min(1e-12).div(Fp8Encoding.Max);
                expanded = scale.repeat_interleave(128, 0).repeat_interleave(128, 1).narrow(0, 0, rows).narrow(1, 0, cols);
                break;
        }
        var codes = Fp8Encoding.Encode(f.div(expanded));
        // The weight owns these from now on: no dispose scope may free them.
        return new Fp8Weight(codes.DetachFromDisposeScope(), scale.contiguous().DetachFromDisposeScope(), block, compute);
    }

    /// <inheritdoc />
    public Tensor Dequantize()
    {
        // CUDA: one kernel through the same table and scales (bit-identical to the tensor operations below).
        if (_codes.device_type == DeviceType.CUDA && _codes.dtype == ScalarType.Byte && _codes.is_contiguous()
            && ComputeDType is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 && PackedWeightKernels.Unavailable(_codes) is null)
            return PackedWeightKernels.Fp8Dequantize(_codes, _table, _scale, _block, ComputeDType);
        return DequantizePortable();
    }

    /// <summary>The dequantized weight by tensor operations (any device; what the CUDA kernel is checked against).</summary>
    internal Tensor DequantizePortable()
    {
        using var scope = NewDisposeScope();
        var values = _table.index_select(0, _codes.flatten().to_type(ScalarType.Int32)).view(_codes.shape);
        var scale = _block is [var r, var c]
            ? _scale.repeat_interleave(r, 0).repeat_interleave(c, 1).narrow(0, 0, OutFeatures).narrow(1, 0, InFeatures)
            : _scale;
        // One float32 multiply: the correctly rounded product of the decoded value and its scale.
        return values.mul(scale).to_type(ComputeDType).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public IEnumerable<(string Name, Tensor Tensor)> CheckpointTensors()
    {
        yield return ("weight", _codes);
        yield return (_block is null ? "weight_scale" : "weight_scale_inv", _scale);
    }

    /// <inheritdoc />
    public string? StoredDType(string name) => name == "weight" ? "F8_E4M3" : null;

    /// <inheritdoc />
    public ILinearBase CopyTo(Device device) =>
        new Fp8Weight(_codes.to(device).DetachFromDisposeScope(), _scale.to(device).DetachFromDisposeScope(), _block, ComputeDType);

    /// <inheritdoc />
    public void Dispose()
    {
        _codes.Dispose();
        _scale.Dispose();
        _table.Dispose();
    }
}
